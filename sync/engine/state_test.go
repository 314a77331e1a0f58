package engine

import (
	"encoding/json"
	"testing"
)

// TestStatesRoundTrip: every state has its own word, which marshals and
// parses back to the same value (status.json and `status --json` keep the
// words; Go code keeps the value); a value outside the enum neither
// marshals nor parses.
func TestStatesRoundTrip(t *testing.T) {
	seen := map[string]bool{}
	for _, s := range States() {
		b, err := s.MarshalText()
		if err != nil || len(b) == 0 || seen[string(b)] {
			t.Fatalf("state %d: word %q, %v (a new state needs its own word in stateNames)", int(s), b, err)
		}
		seen[string(b)] = true
		var back State
		if err := back.UnmarshalText(b); err != nil || back != s {
			t.Fatalf("%q parsed as %v, %v", b, back, err)
		}
	}
	if _, err := State(len(States())).MarshalText(); err == nil {
		t.Fatal("a state outside the enum marshalled")
	}
	var s State
	if err := s.UnmarshalText([]byte("sleeping")); err == nil {
		t.Fatal("an unknown word parsed")
	}

	platform := map[string]bool{}
	for _, p := range PlatformStates() {
		b, err := p.MarshalText()
		if err != nil || platform[string(b)] {
			t.Fatalf("platform state %d: word %q, %v", int(p), b, err)
		}
		platform[string(b)] = true
		var back PlatformState
		if err := back.UnmarshalText(b); err != nil || back != p {
			t.Fatalf("%q parsed as %v, %v", b, back, err)
		}
	}
	if _, err := PlatformState(-1).MarshalText(); err == nil {
		t.Fatal("a platform state outside the enum marshalled")
	}
}

// TestPauseReasonJSON: a set of reasons is a list of names in JSON; the
// empty set is left out of a snapshot; an unknown name is an error.
func TestPauseReasonJSON(t *testing.T) {
	b, err := json.Marshal(Snapshot{Paused: true, PausedFor: PausedByUser | PausedOnMetered})
	if err != nil {
		t.Fatal(err)
	}
	var back Snapshot
	if err := json.Unmarshal(b, &back); err != nil || back.PausedFor != PausedByUser|PausedOnMetered {
		t.Fatalf("%s decoded as %v, %v", b, back.PausedFor, err)
	}
	var m map[string]any
	json.Unmarshal(b, &m)
	if l, _ := m["paused_for"].([]any); len(l) != 2 || l[0] != "user" || l[1] != "metered" {
		t.Fatalf("paused_for is %v", m["paused_for"])
	}
	var empty map[string]any
	if b, _ := json.Marshal(Snapshot{}); json.Unmarshal(b, &empty) == nil {
		if _, ok := empty["paused_for"]; ok {
			t.Fatalf("an empty set is written: %s", b)
		}
	}
	var p PauseReason
	if err := json.Unmarshal([]byte(`["user","bored"]`), &p); err == nil {
		t.Fatal("an unknown reason parsed")
	}
	for _, r := range PauseReasons() {
		if len(r.Names()) != 1 || r.Names()[0] == "" {
			t.Fatalf("reason %d has no name (add it to pauseNames)", r)
		}
	}
}
