package cmdutil

import (
	"context"
	"errors"

	"github.com/spf13/cobra"

	"github.com/tikvops/operator/internal/store"
)

// ClusterScope is what `--cluster NAME` selects in a database that may
// hold several TiKV clusters (docs/ha.md, "Several clusters").
type ClusterScope struct {
	// ID is the PD cluster id to filter by; "" means every cluster.
	ID string
	// Column is true when rows of several clusters may be shown: the
	// table gets a CLUSTER column.
	Column bool
	// names maps a PD cluster id to its name.
	names map[string]string
}

// AddClusterFlag adds --cluster NAME to cmd.
func AddClusterFlag(cmd *cobra.Command, name *string) {
	cmd.Flags().StringVar(name, "cluster", "", "only this cluster's rows ([cluster] name; default: every cluster, with a CLUSTER column when the database holds several)")
}

// ResolveCluster resolves the --cluster flag against st: a name selects
// that cluster; no name selects every cluster (with a CLUSTER column when
// the database holds more than one; with one, that is the configured
// cluster's). Errors: an unknown name is a usage error (exit 2) listing
// the names the database holds.
func ResolveCluster(ctx context.Context, st *store.Store, name string) (ClusterScope, error) {
	cs, err := st.ClusterList(ctx)
	if err != nil {
		return ClusterScope{}, err
	}
	sc := ClusterScope{names: map[string]string{}}
	for _, c := range cs {
		sc.names[c.ID] = c.Name
	}
	if name == "" {
		sc.Column = len(cs) > 1
		return sc, nil
	}
	id, err := st.ClusterNamed(ctx, name)
	if errors.Is(err, store.ErrNotFound) {
		return ClusterScope{}, FlagErrorf("--cluster: %v", err)
	}
	if err != nil {
		return ClusterScope{}, err
	}
	sc.ID = id
	return sc, nil
}

// Name returns the name of PD cluster id ("-" when the row has none, the
// id itself when the database does not name it).
func (s ClusterScope) Name(id string) string {
	if id == "" {
		return "-"
	}
	if n, ok := s.names[id]; ok {
		return n
	}
	return id
}
