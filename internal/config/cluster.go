package config

import (
	"fmt"
	"regexp"
)

// Cluster names the TiKV cluster this daemon watches ([pd] endpoints).
// Several clusters, each watched by its own daemon, may share one
// database; each is bound there under its name for good (a name to one PD
// cluster id; docs/ha.md, "Several clusters").
type Cluster struct {
	// Name is the cluster's name in the database, shown in the CLI's
	// CLUSTER column, the console and notifications, and the CLI's
	// default --cluster. Empty: the name PD's cluster id is already bound
	// under, or "default" for a database's first cluster; a second
	// cluster in one database needs a name. Letters, digits, '.', '_'
	// and '-', at most 64 characters.
	Name string `toml:"name" json:"name,omitempty"`
}

var clusterNameRE = regexp.MustCompile(`^[A-Za-z0-9._-]{1,64}$`)

func (c *Config) validateCluster() error {
	if c.Cluster.Name != "" && !clusterNameRE.MatchString(c.Cluster.Name) {
		return fmt.Errorf("config: cluster name %q: 1 to 64 letters, digits, '.', '_' or '-'", c.Cluster.Name)
	}
	return nil
}
