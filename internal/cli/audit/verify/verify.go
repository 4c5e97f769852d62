// Package verify implements `operator audit verify`.
package verify

import (
	"context"
	"errors"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/tikvops/operator/internal/auditkey"
	"github.com/tikvops/operator/internal/cli/cmdutil"
	"github.com/tikvops/operator/internal/cli/iostreams"
	"github.com/tikvops/operator/internal/config"
	"github.com/tikvops/operator/internal/store"
)

// VerifyOptions are the parsed flags of `operator audit verify`.
type VerifyOptions struct {
	IO     *iostreams.IOStreams
	Store  func(ctx context.Context) (*store.Store, error)
	Config func() (config.Config, error)
	Format string
}

// NewCmdVerify returns the command; runF replaces verifyRun in tests.
func NewCmdVerify(f *cmdutil.Factory, runF func(context.Context, *VerifyOptions) error) *cobra.Command {
	opts := &VerifyOptions{IO: f.IOStreams, Store: f.Store, Config: f.Config}
	cmd := &cobra.Command{
		Use:   "verify",
		Short: "Walk the audit trail's hash chain and report the first broken record",
		Long: `Walk the audit trail in id order and check every record's SHA-256 against
its content and its predecessor's hash, every record's Ed25519 signature
against the daemon's audit public key (audit.key.pub in [audit] key-dir,
by default next to the database), and the chain against the checkpoints the
daemon appends outside the database after every record: audit.checkpoint,
and one audit.checkpoint.<replica> per replica when several replicas or a
PostgreSQL database share the key directory. Every checkpoint file is read:
a hash any of them recorded must match, and the newest head of all of them
bounds the chain's length.
An edited, forged, missing or reordered record, a wiped chain, a trimmed
tail or a reset sequence is reported with its id; the exit status is then 8.

It reads the database (file or PostgreSQL) directly, so it works while the
daemon is down.`,
		Args: cmdutil.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			opts.Format = f.Format()
			if runF != nil {
				return runF(cmd.Context(), opts)
			}
			return verifyRun(cmd.Context(), opts)
		},
	}
	return cmd
}

func verifyRun(ctx context.Context, opts *VerifyOptions) error {
	st, err := opts.Store(ctx)
	if err != nil {
		return err
	}
	defer st.Close()
	o := store.VerifyOptions{}
	if opts.Config != nil {
		cfg, err := opts.Config()
		if err != nil {
			return err
		}
		o.KeyDir = cfg.AuditKeyDir()
		if pub, err := auditkey.LoadPublic(o.KeyDir); err == nil {
			o.PublicKey = pub
		} else if !errors.Is(err, auditkey.ErrNoKey) {
			return err
		}
	}
	rep, err := st.VerifyWith(ctx, o)
	if err != nil {
		return err
	}
	if opts.Format != cmdutil.FormatJSON {
		for _, w := range rep.Warnings {
			fmt.Fprintf(opts.IO.ErrOut, "warning: %s\n", w)
		}
	}
	if opts.Format == cmdutil.FormatJSON {
		if err := cmdutil.PrintJSON(opts.IO.Out, rep); err != nil {
			return err
		}
	} else if rep.OK {
		if rep.Records == 0 {
			fmt.Fprintln(opts.IO.Out, "audit trail OK: no records yet")
		} else {
			files := ""
			if len(rep.Checkpoints) > 1 {
				files = fmt.Sprintf(" (newest of %d checkpoint files)", len(rep.Checkpoints))
			}
			fmt.Fprintf(opts.IO.Out, "audit trail OK: %d records (%d signatures verified), head record %d sha256 %s; checkpoint outside the database at record %d%s\n",
				rep.Records, rep.Signed, rep.HeadID, rep.HeadHash, rep.CheckpointID, files)
		}
	}
	if !rep.OK {
		b := rep.Broken
		if b == nil {
			return fmt.Errorf("%w: chain reported broken without detail", cmdutil.ErrVerifyFailed)
		}
		return fmt.Errorf("%w: record %d: %s: %s (%d records checked before it)", cmdutil.ErrVerifyFailed, b.ID, b.Kind, b.Detail, rep.Records)
	}
	return nil
}
