// Package depspin keeps the project's planned dependencies in go.mod while
// the packages that use them are written in parallel. Remove it once every
// module below is imported for real.
package depspin

import (
	_ "github.com/BurntSushi/toml"
	_ "github.com/anthropics/anthropic-sdk-go/v2"
	_ "github.com/docker/go-units"
	_ "github.com/openai/openai-go/v3"
	_ "github.com/pingcap/kvproto/pkg/metapb"
	_ "github.com/pingcap/kvproto/pkg/pdpb"
	_ "github.com/prometheus/client_golang/api"
	_ "github.com/prometheus/client_golang/api/prometheus/v1"
	_ "github.com/prometheus/client_golang/prometheus"
	_ "github.com/prometheus/client_golang/prometheus/promhttp"
	_ "github.com/prometheus/common/model"
	_ "github.com/spf13/cobra"
	_ "google.golang.org/grpc"
	_ "modernc.org/sqlite"
)
