package pd

// Route templates of PD's HTTP API (PD v8.1 server/api/router.go). They are
// the paths the client calls, with ids written as {id}; the Observer hook
// receives these templates, not the concrete paths, so that metrics labelled
// by path keep a bounded cardinality.
//
// They mirror the constants of github.com/tikv/pd/client/http (api.go). That
// package is not imported: at the version pd-api.md cites
// (v0.0.0-20260609141937-b01426f6b08b) its go.mod requires
// github.com/pingcap/kvproto v0.0.0-20260526084754, two years newer than the
// kvproto the simulator pins to speak to our PD v8.1 (20240222024302), plus
// pingcap/errors, pingcap/log, zap, failpoint, opentracing, gosigar and
// go-netstat; and its StoreInfo lacks node_state, slow_score and used_size
// while it has no method to create operators or set store state. Twenty
// route strings are cheaper than that dependency tree.
const (
	apiPrefix = "/pd/api/v1"

	routeStores          = apiPrefix + "/stores"
	routeStoresCheck     = apiPrefix + "/stores/check"
	routeStoresProgress  = apiPrefix + "/stores/progress"
	routeStore           = apiPrefix + "/store"
	routeStoreByID       = apiPrefix + "/store/{id}"
	routeStoreState      = apiPrefix + "/store/{id}/state"
	routeRegionByID      = apiPrefix + "/region/id/{id}"
	routeRegionsByStore  = apiPrefix + "/regions/store/{id}"
	routeRegionsCheck    = apiPrefix + "/regions/check/{name}"
	routeRegionsScan     = apiPrefix + "/regions/key"
	routeChecker         = apiPrefix + "/checker/{name}"
	routeRegionsTop      = apiPrefix + "/regions/{by}"
	routeHotWrite        = apiPrefix + "/hotspot/regions/write"
	routeHotRead         = apiPrefix + "/hotspot/regions/read"
	routeHotStores       = apiPrefix + "/hotspot/stores"
	routeClusterStatus   = apiPrefix + "/cluster/status"
	routeHealth          = apiPrefix + "/health"
	routeMembers         = apiPrefix + "/members"
	routeLeader          = apiPrefix + "/leader"
	routeVersion         = apiPrefix + "/version"
	routeConfig          = apiPrefix + "/config"
	routeScheduleConfig  = apiPrefix + "/config/schedule"
	routeReplicateConfig = apiPrefix + "/config/replicate"
	routeOperators       = apiPrefix + "/operators"
	routeOperatorRegion  = apiPrefix + "/operators/{id}"
	routeSchedulers      = apiPrefix + "/schedulers"
	routeSchedulerByName = apiPrefix + "/schedulers/{name}"
	routeEvictLeaderList = apiPrefix + "/scheduler-config/evict-leader-scheduler/list"
)

// EvictLeaderScheduler is the name of PD's evict-leader scheduler, the
// reversible maintenance drain of a store's leaders. PD >= 4.0 runs one
// scheduler holding many stores; its per-store name for DELETE
// /schedulers/{name} is EvictLeaderScheduler + "-" + store id.
const EvictLeaderScheduler = "evict-leader-scheduler"
