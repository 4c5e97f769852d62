// Package verify implements `operator audit verify`.
package verify

import (
	"context"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/tikvops/operator/internal/cli/cmdutil"
	"github.com/tikvops/operator/internal/cli/iostreams"
	"github.com/tikvops/operator/internal/store"
)

// VerifyOptions are the parsed flags of `operator audit verify`.
type VerifyOptions struct {
	IO     *iostreams.IOStreams
	Store  func(ctx context.Context) (*store.Store, error)
	Format string
}

// NewCmdVerify returns the command; runF replaces verifyRun in tests.
func NewCmdVerify(f *cmdutil.Factory, runF func(context.Context, *VerifyOptions) error) *cobra.Command {
	opts := &VerifyOptions{IO: f.IOStreams, Store: f.Store}
	cmd := &cobra.Command{
		Use:   "verify",
		Short: "Walk the audit trail's hash chain and report the first broken record",
		Long: `Walk the audit trail in id order and check every record's SHA-256 against
its content and its predecessor's hash. An edited record, a missing one or
a reordered chain is reported with its id; the exit status is then 8.

The head hash printed on success identifies the whole trail: keep a copy
elsewhere to detect a later rewrite of the entire chain.`,
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
	rep, err := st.Verify(ctx)
	if err != nil {
		return err
	}
	if opts.Format == cmdutil.FormatJSON {
		if err := cmdutil.PrintJSON(opts.IO.Out, rep); err != nil {
			return err
		}
	} else if rep.OK {
		if rep.Records == 0 {
			fmt.Fprintln(opts.IO.Out, "audit trail OK: no records yet")
		} else {
			fmt.Fprintf(opts.IO.Out, "audit trail OK: %d records, head record %d sha256 %s\n", rep.Records, rep.HeadID, rep.HeadHash)
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
