package tikv

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/tikvops/operator/internal/action"
	"github.com/tikvops/operator/internal/pd"
)

// MaxSchedulerPause bounds pause_scheduler's delay_seconds: one day. A
// longer pause is how a forgotten paused scheduler skews a cluster for
// weeks; PD resumes the scheduler by itself when the delay ends.
const MaxSchedulerPause = 24 * time.Hour

// AddableSchedulers are the schedulers add_scheduler may create: PD's
// default balance schedulers and evict-slow-store-scheduler (PD v8.1
// pkg/schedule/config/config.go DefaultSchedulers), all taking no
// arguments in POST /pd/api/v1/schedulers.
var AddableSchedulers = []string{
	"balance-leader-scheduler", "balance-region-scheduler", "balance-hot-region-scheduler", "evict-slow-store-scheduler",
}

// HotRegionScheduler is the name of PD's hot-region scheduler.
const HotRegionScheduler = "balance-hot-region-scheduler"

var schedulerName = regexp.MustCompile(`^[a-z][a-z0-9-]{0,62}$`)

type schedulerParams struct {
	Name string `json:"name"`
}

func nameParam(desc string) action.Param {
	return action.Param{Name: "name", Type: action.ParamString, Required: true, Description: desc}
}

// schedulerState is what GET /pd/api/v1/schedulers and
// ?status=paused&timestamp=true say about one scheduler.
type schedulerState struct {
	enabled  bool
	paused   bool
	resumeAt time.Time
	names    []string
}

func loadScheduler(ctx context.Context, c *pd.Client, name string) (schedulerState, error) {
	names, err := c.Schedulers(ctx)
	if err != nil {
		return schedulerState{}, err
	}
	paused, err := c.PausedSchedulerTimes(ctx)
	if err != nil {
		return schedulerState{}, err
	}
	st := schedulerState{enabled: slices.Contains(names, name), names: names}
	for _, p := range paused {
		if p.Name == name {
			st.paused, st.resumeAt = true, p.ResumeAt
		}
	}
	return st, nil
}

// checkSchedulerName records a well-formed scheduler name (lowercase,
// digits and dashes, at most 63 characters).
func checkSchedulerName(p *plan, name string) bool {
	return p.check("scheduler_name", schedulerName.MatchString(name), "scheduler name %q %s", truncateText(name, 70),
		map[bool]string{true: "is well-formed", false: "must be lowercase letters, digits and dashes (e.g. balance-leader-scheduler)"}[schedulerName.MatchString(name)])
}

func truncateText(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}

func schedulerPath(name string) string { return "/pd/api/v1/schedulers/" + url.PathEscape(name) }

func pauseStep(c *pd.Client, name string, delay int64) step {
	body := map[string]any{"delay": delay}
	return step{
		req:  action.Request{Method: "POST", Path: schedulerPath(name), Body: jsonBody(body)},
		send: func(ctx context.Context) error { return c.PauseScheduler(ctx, name, delay) },
	}
}

func pausedVerifier(c *pd.Client, name string, wantPaused bool) func(context.Context) (verdict, error) {
	return func(ctx context.Context) (verdict, error) {
		st, err := loadScheduler(ctx, c, name)
		if err != nil {
			return verdict{}, err
		}
		obs := map[string]any{"scheduler": name, "paused": st.paused, "enabled": st.enabled}
		msg := fmt.Sprintf("GET /pd/api/v1/schedulers?status=paused: %s paused=%v", name, st.paused)
		if st.paused {
			obs["resume_at"] = st.resumeAt.Unix()
			msg += fmt.Sprintf(" until %s", st.resumeAt.UTC().Format(time.RFC3339))
		}
		return verdict{done: st.enabled && st.paused == wantPaused, msg: msg, observed: obs}, nil
	}
}

// SchedulerSettle is action.Spec.Settle of the actions that hand the work
// back to PD's schedulers (resume or add a scheduler, raise a store limit,
// let leaders back onto a store): PD's balance schedulers run every few
// seconds and move a few regions per round (leader-schedule-limit 4,
// region-schedule-limit 2048 with store limits of 15 per minute by
// default, PD v4.0-v8.5), so an imbalance of tens of leaders takes a minute
// or two to even out.
const SchedulerSettle = 3 * time.Minute

func resumeScheduler() *pdAction {
	spec := action.Spec{
		Name: ActionResumeScheduler,
		Description: "Resume a paused PD scheduler (POST /pd/api/v1/schedulers/{name} {\"delay\":0}, pd-ctl scheduler resume), " +
			"e.g. a balance-leader-scheduler left paused after maintenance.",
		Params:     []action.Param{nameParam("scheduler to resume, e.g. balance-leader-scheduler")},
		Risk:       action.RiskMedium,
		Settle:     SchedulerSettle,
		Reversible: true,
		Rollback: "pause_scheduler(name, delay_seconds = previous.resume_at - now) restores the recorded pause " +
			"(previous.paused=true, previous.resume_at in unix seconds)",
	}
	return typedAction(spec, func(ctx context.Context, c *pd.Client, prm schedulerParams) (*plan, error) {
		p := &plan{}
		if !checkSchedulerName(p, prm.Name) {
			return p, nil
		}
		st, err := loadScheduler(ctx, c, prm.Name)
		if err != nil {
			return nil, err
		}
		if !p.check("scheduler_exists", st.enabled, "GET /pd/api/v1/schedulers %s %s", map[bool]string{true: "lists", false: "does not list"}[st.enabled], prm.Name) {
			p.warn("a removed or disabled scheduler is created again with add_scheduler, not resumed")
			return p, nil
		}
		p.check("scheduler_paused", st.paused, "%s paused: %v", prm.Name, st.paused)
		if st.paused {
			p.previous = map[string]any{"paused": true, "resume_at": st.resumeAt.Unix()}
			p.summary = fmt.Sprintf("resume %s (paused until %s)", prm.Name, st.resumeAt.UTC().Format(time.RFC3339))
		}
		p.steps = []step{pauseStep(c, prm.Name, 0)}
		p.verify = pausedVerifier(c, prm.Name, false)
		return p, nil
	})
}

type pauseParams struct {
	Name         string `json:"name"`
	DelaySeconds int64  `json:"delay_seconds"`
}

func pauseScheduler() *pdAction {
	spec := action.Spec{
		Name: ActionPauseScheduler,
		Description: "Pause a PD scheduler for delay_seconds (POST /pd/api/v1/schedulers/{name} {\"delay\":N}, pd-ctl scheduler pause); " +
			"PD resumes it by itself when the delay ends.",
		Params: []action.Param{
			nameParam("scheduler to pause, e.g. balance-region-scheduler"),
			{Name: "delay_seconds", Type: action.ParamInteger, Required: true, Min: floatPtr(1), Max: floatPtr(MaxSchedulerPause.Seconds()),
				Description: "how long PD keeps it paused, seconds (1 to 86400)"},
		},
		Risk:       action.RiskMedium,
		Reversible: true,
		Rollback: "temporary by itself: PD resumes the scheduler after delay_seconds; resume_scheduler(name) ends it early " +
			"(previous.paused=false); when it was already paused, pause_scheduler(name, previous.resume_at - now) restores that pause",
	}
	return typedAction(spec, func(ctx context.Context, c *pd.Client, prm pauseParams) (*plan, error) {
		p := &plan{}
		if !checkSchedulerName(p, prm.Name) {
			return p, nil
		}
		st, err := loadScheduler(ctx, c, prm.Name)
		if err != nil {
			return nil, err
		}
		if !p.check("scheduler_exists", st.enabled, "GET /pd/api/v1/schedulers %s %s", map[bool]string{true: "lists", false: "does not list"}[st.enabled], prm.Name) {
			return p, nil
		}
		p.previous = map[string]any{"paused": st.paused}
		if st.paused {
			p.previous["resume_at"] = st.resumeAt.Unix()
			p.warn("%s is already paused until %s; this replaces that pause", prm.Name, st.resumeAt.UTC().Format(time.RFC3339))
		}
		if strings.HasPrefix(prm.Name, "evict-") {
			p.warn("pausing %s stops it from protecting the cluster (evicting leaders from slow or maintained stores) for %ds", prm.Name, prm.DelaySeconds)
		}
		p.steps = []step{pauseStep(c, prm.Name, prm.DelaySeconds)}
		p.summary = fmt.Sprintf("pause %s for %ds (PD resumes it by itself afterwards)", prm.Name, prm.DelaySeconds)
		p.verify = pausedVerifier(c, prm.Name, true)
		return p, nil
	})
}

func enabledVerifier(c *pd.Client, name string, want bool) func(context.Context) (verdict, error) {
	return func(ctx context.Context) (verdict, error) {
		names, err := c.Schedulers(ctx)
		if err != nil {
			return verdict{}, err
		}
		has := slices.Contains(names, name)
		return verdict{
			done:     has == want,
			msg:      fmt.Sprintf("GET /pd/api/v1/schedulers %s %s", map[bool]string{true: "lists", false: "does not list"}[has], name),
			observed: map[string]any{"schedulers": names},
		}, nil
	}
}

func addScheduler() *pdAction {
	spec := action.Spec{
		Name: ActionAddScheduler,
		Description: "Create one of PD's argument-less schedulers again (POST /pd/api/v1/schedulers {\"name\":...}, pd-ctl scheduler add): " +
			"a balance scheduler or evict-slow-store-scheduler that was removed.",
		Params: []action.Param{{Name: "name", Type: action.ParamString, Required: true, Enum: AddableSchedulers,
			Description: "scheduler to create"}},
		Risk:       action.RiskMedium,
		Settle:     SchedulerSettle,
		Reversible: true,
		Rollback:   "remove_scheduler(name) (previous.enabled=false)",
	}
	return typedAction(spec, func(ctx context.Context, c *pd.Client, prm schedulerParams) (*plan, error) {
		p := &plan{}
		names, err := c.Schedulers(ctx)
		if err != nil {
			return nil, err
		}
		has := slices.Contains(names, prm.Name)
		p.check("scheduler_absent", !has, "GET /pd/api/v1/schedulers %s %s", map[bool]string{true: "already lists", false: "does not list"}[has], prm.Name)
		p.previous = map[string]any{"enabled": has}
		body := map[string]any{"name": prm.Name}
		p.steps = []step{{
			req:  action.Request{Method: "POST", Path: "/pd/api/v1/schedulers", Body: jsonBody(body)},
			send: func(ctx context.Context) error { return c.AddScheduler(ctx, body) },
		}}
		p.summary = "create " + prm.Name
		p.verify = enabledVerifier(c, prm.Name, true)
		return p, nil
	})
}

func removeScheduler() *pdAction {
	spec := action.Spec{
		Name: ActionRemoveScheduler,
		Description: "Remove a PD scheduler (DELETE /pd/api/v1/schedulers/{name}, pd-ctl scheduler remove). " +
			"Stores under evict-leader are released with remove_evict_leader instead.",
		Params:     []action.Param{nameParam("scheduler to remove, e.g. shuffle-leader-scheduler")},
		Risk:       action.RiskMedium,
		Reversible: true,
		Rollback:   "add_scheduler(name) for the balance schedulers and evict-slow-store-scheduler (previous.enabled=true); others are re-created with pd-ctl scheduler add and their arguments",
	}
	return typedAction(spec, func(ctx context.Context, c *pd.Client, prm schedulerParams) (*plan, error) {
		p := &plan{}
		if !checkSchedulerName(p, prm.Name) {
			return p, nil
		}
		evict := strings.HasPrefix(prm.Name, pd.EvictLeaderScheduler)
		if !p.check("not_evict_leader", !evict, "%s: use remove_evict_leader(store_id) to release one store", prm.Name) {
			return p, nil
		}
		names, err := c.Schedulers(ctx)
		if err != nil {
			return nil, err
		}
		has := slices.Contains(names, prm.Name)
		p.check("scheduler_exists", has, "GET /pd/api/v1/schedulers %s %s", map[bool]string{true: "lists", false: "does not list"}[has], prm.Name)
		if prm.Name == "evict-slow-store-scheduler" {
			p.warn("without evict-slow-store-scheduler PD no longer moves leaders off a store whose disk turns slow")
		}
		p.previous = map[string]any{"enabled": has}
		name := prm.Name
		p.steps = []step{{
			req:  action.Request{Method: "DELETE", Path: schedulerPath(name)},
			send: func(ctx context.Context) error { return c.RemoveScheduler(ctx, name) },
		}}
		p.summary = "remove " + name
		p.verify = enabledVerifier(c, name, false)
		return p, nil
	})
}

// hotConfigKeys maps set_hot_region_scheduler_config's params to PD's keys
// of balance-hot-region-scheduler (PD v8.1
// pkg/schedule/schedulers/hot_region_config.go:142-151).
var hotConfigKeys = []struct{ param, key string }{
	{"write_leader_priorities", "write-leader-priorities"},
	{"rank_formula_version", "rank-formula-version"},
	{"strict_picking_store", "strict-picking-store"},
}

type hotConfigParams struct {
	WriteLeaderPriorities []string `json:"write_leader_priorities"`
	RankFormulaVersion    string   `json:"rank_formula_version"`
	StrictPickingStore    string   `json:"strict_picking_store"`
}

func setHotRegionConfig() *pdAction {
	spec := action.Spec{
		Name: ActionSetHotRegionConfig,
		Description: "Change PD's hot-region scheduler for writes (POST /pd/api/v1/scheduler-config/balance-hot-region-scheduler/config): " +
			"write-leader-priorities (two of query, byte, key), rank-formula-version (v1 or v2), strict-picking-store (\"true\"/\"false\"). " +
			"Each key is checked against GET .../list of the running PD first.",
		Params: []action.Param{
			{Name: "write_leader_priorities", Type: action.ParamStringList, Enum: []string{"query", "byte", "key"},
				Description: "two distinct dimensions, most important first, e.g. [\"query\",\"byte\"] (PD default) or [\"key\",\"byte\"]"},
			{Name: "rank_formula_version", Type: action.ParamString, Enum: []string{"v1", "v2"}, Description: "v2 (PD >= 6.3 default) or v1"},
			{Name: "strict_picking_store", Type: action.ParamString, Enum: []string{"true", "false"},
				Description: "\"true\" (default) only moves when both dimensions improve; v1 formula only"},
		},
		Risk:       action.RiskMedium,
		Settle:     SchedulerSettle,
		Reversible: true,
		Rollback:   "set_hot_region_scheduler_config with the values recorded in previous (keyed by PD's names)",
	}
	return typedAction(spec, func(ctx context.Context, c *pd.Client, prm hotConfigParams) (*plan, error) {
		p := &plan{}
		items := map[string]any{}
		if prm.WriteLeaderPriorities != nil {
			pr := prm.WriteLeaderPriorities
			distinct := len(pr) == 2 && pr[0] != pr[1]
			if !p.check("priorities_shape", distinct, "write_leader_priorities %v must be two distinct dimensions (PD refuses fewer than two or repeats)", pr) {
				return p, nil
			}
			items["write-leader-priorities"] = pr
		}
		if prm.RankFormulaVersion != "" {
			items["rank-formula-version"] = prm.RankFormulaVersion
		}
		if prm.StrictPickingStore != "" {
			items["strict-picking-store"] = prm.StrictPickingStore
		}
		if !p.check("some_change", len(items) > 0, "%d of write_leader_priorities, rank_formula_version, strict_picking_store given", len(items)) {
			return p, nil
		}
		cur, err := c.SchedulerConfig(ctx, HotRegionScheduler)
		if err != nil {
			if apiErr := (*pd.APIError)(nil); asAPIError(err, &apiErr) {
				p.check("scheduler_config_readable", false, "GET /pd/api/v1/scheduler-config/%s/list refused: %s (is the scheduler running?)", HotRegionScheduler, apiErr.Message)
				return p, nil
			}
			return nil, err
		}
		previous := map[string]any{}
		for _, k := range hotConfigKeys {
			if _, given := items[k.key]; !given {
				continue
			}
			raw, ok := cur[k.key]
			shape := ""
			var prev any
			switch k.key {
			case "write-leader-priorities":
				var v []string
				if ok && json.Unmarshal(raw, &v) == nil {
					prev = v
				} else {
					shape = "an array of strings"
				}
			default: // rank-formula-version and strict-picking-store are JSON strings
				var v string
				if ok && json.Unmarshal(raw, &v) == nil {
					prev = v
				} else {
					shape = "a string"
				}
			}
			if !ok {
				p.check("key_supported", false, "%s missing from GET /pd/api/v1/scheduler-config/%s/list: this PD version does not support it", k.key, HotRegionScheduler)
				continue
			}
			if !p.check("key_shape", shape == "", "%s on this PD is %.60s%s", k.key, string(raw), map[bool]string{true: "", false: ", want " + shape}[shape == ""]) {
				continue
			}
			previous[k.key] = prev
		}
		p.previous = previous
		version := prm.RankFormulaVersion
		if version == "" {
			_ = json.Unmarshal(cur["rank-formula-version"], &version)
		}
		if prm.StrictPickingStore != "" && version == "v2" {
			p.warn("strict-picking-store only affects rank-formula-version v1; this PD uses v2")
		}
		p.steps = []step{{
			req: action.Request{Method: "POST", Path: "/pd/api/v1/scheduler-config/" + HotRegionScheduler + "/config", Body: jsonBody(items)},
			send: func(ctx context.Context) error {
				return c.SetSchedulerConfig(ctx, HotRegionScheduler, items)
			},
		}}
		p.summary = fmt.Sprintf("set %s of %s (previously %s)", string(jsonBody(items)), HotRegionScheduler, string(jsonBody(previous)))
		p.verify = func(ctx context.Context) (verdict, error) {
			now, err := c.SchedulerConfig(ctx, HotRegionScheduler)
			if err != nil {
				return verdict{}, err
			}
			obs := map[string]any{}
			done := true
			for k, want := range items {
				obs[k] = json.RawMessage(now[k])
				if string(now[k]) != string(jsonBody(want)) && compactJSON(now[k]) != string(jsonBody(want)) {
					done = false
				}
			}
			return verdict{done: done, msg: fmt.Sprintf("GET .../%s/list shows %s", HotRegionScheduler, string(jsonBody(obs))), observed: obs}, nil
		}
		return p, nil
	})
}

func compactJSON(raw json.RawMessage) string {
	var v any
	if json.Unmarshal(raw, &v) != nil {
		return string(raw)
	}
	return string(jsonBody(v))
}
