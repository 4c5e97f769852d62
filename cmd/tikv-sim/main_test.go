package main

import (
	"bytes"
	"strings"
	"testing"
)

func TestRunRejectsBadFlags(t *testing.T) {
	for _, args := range [][]string{
		{"--stores", "x"},
		{"--log-level", "loud"},
		{"extra"},
		{"--schedule", "novalue"},
	} {
		var out, errb bytes.Buffer
		if code := run(args, &out, &errb); code != 2 {
			t.Errorf("run(%q) = %d, want 2 (stderr %q)", args, code, errb.String())
		}
	}
}

func TestRunFailsCleanlyWithoutPD(t *testing.T) {
	var out, errb bytes.Buffer
	code := run([]string{"--pd", "http://127.0.0.1:1", "--control", "", "--setup-timeout", "300ms"}, &out, &errb)
	if code != 1 || !strings.Contains(errb.String(), "wait for PD") {
		t.Fatalf("run against no PD = %d, stderr %q; want 1 and a wait-for-PD error", code, errb.String())
	}
}

func TestRunRejectsBadSizes(t *testing.T) {
	var out, errb bytes.Buffer
	code := run([]string{"--capacity", "huge", "--control", ""}, &out, &errb)
	if code != 1 || !strings.Contains(errb.String(), "--capacity") {
		t.Fatalf("run --capacity huge = %d, stderr %q", code, errb.String())
	}
}

func TestScheduleFlagTypes(t *testing.T) {
	var f scheduleFlag
	for _, s := range []string{"leader-schedule-limit=8", "low-space-ratio=0.9", "enable-joint-consensus=false", "max-store-down-time=30s"} {
		if err := f.Set(s); err != nil {
			t.Fatal(err)
		}
	}
	if f.m["leader-schedule-limit"] != int64(8) || f.m["low-space-ratio"] != 0.9 || f.m["enable-joint-consensus"] != false || f.m["max-store-down-time"] != "30s" {
		t.Fatalf("parsed %#v", f.m)
	}
}
