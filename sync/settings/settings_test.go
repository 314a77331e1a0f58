package settings

import (
	"encoding/json"
	"reflect"
	"slices"
	"strings"
	"testing"
)

// TestPrecedence: for one key, every combination of layers resolves to the
// strongest layer that sets it: policy-locked > platform > user > policy
// default > built-in default.
func TestPrecedence(t *testing.T) {
	days := func(n int) Values { return Values{BackfillDays: Int(n)} }
	tests := []struct {
		name string
		l    Layers
		want int
		src  Source
	}{
		{"nothing set", Layers{}, DefaultBackfillDays, SourceDefault},
		{"policy default", Layers{Defaults: days(7)}, 7, SourcePolicyDefault},
		{"user over policy default", Layers{Defaults: days(7), User: days(90)}, 90, SourceUser},
		{"platform over user", Layers{Defaults: days(7), User: days(90), Platform: days(365)}, 365, SourcePlatform},
		{"lock over platform", Layers{Defaults: days(7), User: days(90), Platform: days(365), Locked: days(1)}, 1, SourcePolicyLocked},
		{"lock over user", Layers{User: days(90), Locked: days(BackfillAll)}, BackfillAll, SourcePolicyLocked},
		{"platform alone", Layers{Platform: days(0)}, 0, SourcePlatform},
		{"invalid platform value falls through", Layers{User: days(90), Platform: days(-7)}, 90, SourceUser},
		{"invalid everywhere: default", Layers{User: days(-2), Platform: days(-3), Locked: days(-4)}, DefaultBackfillDays, SourceDefault},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := Resolve(tt.l)
			if e.BackfillDays != tt.want || e.Source(BackfillDays) != tt.src {
				t.Fatalf("got %d from %v, want %d from %v", e.BackfillDays, e.Source(BackfillDays), tt.want, tt.src)
			}
			if e.Locked(BackfillDays) != (tt.src == SourcePolicyLocked) {
				t.Fatalf("locked %v from %v", e.Locked(BackfillDays), tt.src)
			}
			if e.UserWins(BackfillDays) != (tt.src <= SourceUser) {
				t.Fatalf("user wins %v from %v", e.UserWins(BackfillDays), tt.src)
			}
		})
	}
}

// TestKeysResolveIndependently: each key comes from its own layer; a layer
// that sets one key leaves the others to the layers below.
func TestKeysResolveIndependently(t *testing.T) {
	e := Resolve(Layers{
		Locked:   Values{LogLevel: String("warn")},
		Platform: Values{RelayDomains: Strings("customer.com"), SendAs: Map(map[string][]string{"alice@acme.com": {"support@acme.com"}})},
		User:     Values{LogLevel: String("debug"), PauseOnMetered: Bool(true), RelayDomains: Strings()},
		Defaults: Values{StartAtLogin: Bool(true)},
	})
	want := map[Key]struct {
		text string
		src  Source
	}{
		BackfillDays:   {"30", SourceDefault},
		RelayDomains:   {"customer.com", SourcePlatform},
		SendAs:         {"alice@acme.com=support@acme.com", SourcePlatform},
		LogLevel:       {"warn", SourcePolicyLocked},
		StartAtLogin:   {"true", SourcePolicyDefault},
		PauseOnMetered: {"true", SourceUser},
	}
	got := e.Settings()
	if len(got) != len(Keys) {
		t.Fatalf("%d settings listed, want %d", len(got), len(Keys))
	}
	for i, s := range got {
		if s.Key != Keys[i] {
			t.Fatalf("setting %d is %s, want %s", i, s.Key, Keys[i])
		}
		w := want[s.Key]
		if s.Value != w.text || s.Source != w.src || s.Locked != (w.src == SourcePolicyLocked) {
			t.Errorf("%s = %q from %v (locked %v), want %q from %v", s.Key, s.Value, s.Source, s.Locked, w.text, w.src)
		}
	}
	// An empty list set by a strong layer wins over a list below it.
	lifted := Resolve(Layers{Platform: Values{RelayDomains: Strings()}, User: Values{RelayDomains: Strings("x.com")}})
	if len(lifted.RelayDomains) != 0 || lifted.Source(RelayDomains) != SourcePlatform {
		t.Fatalf("relay domains %v from %v, want none from the platform", lifted.RelayDomains, lifted.Source(RelayDomains))
	}
}

// TestEveryFieldHasAKey: a field added to Values without a Key (or a Key
// without its cases in Has, Set and Text) fails here, not silently in a
// front end.
func TestEveryFieldHasAKey(t *testing.T) {
	rt := reflect.TypeOf(Values{})
	var tags []string
	for i := range rt.NumField() {
		tag, _, _ := strings.Cut(rt.Field(i).Tag.Get("json"), ",")
		tags = append(tags, tag)
	}
	var keys []string
	for _, k := range Keys {
		keys = append(keys, string(k))
	}
	if !slices.Equal(tags, keys) {
		t.Fatalf("Values' fields %v, Keys %v: keep them in step", tags, keys)
	}
	def := Default()
	for _, k := range Keys {
		if !def.Has(k) {
			t.Errorf("Default does not set %s", k)
		}
		text, ok := def.Text(k)
		if !ok {
			t.Errorf("Text does not know %s", k)
		}
		var v Values
		if err := v.Set(k, text); err != nil || !v.Has(k) {
			t.Errorf("Set(%s, %q): %v", k, text, err)
		}
		if again, _ := v.Text(k); again != text {
			t.Errorf("%s: %q after a round trip, want %q", k, again, text)
		}
		if v.Unset(k).Has(k) {
			t.Errorf("Unset(%s) leaves it set", k)
		}
	}
}

func TestSetParsesAndValidates(t *testing.T) {
	good := []struct {
		k    Key
		text string
		want string
	}{
		{BackfillDays, "all", "all"},
		{BackfillDays, " 7 ", "7"},
		{BackfillDays, "0", "0"},
		{RelayDomains, "Customer.com, .other.org ,", "customer.com,.other.org"},
		{RelayDomains, "", ""},
		{SendAs, "Alice@acme.com=support@acme.com sales@acme.com; bob@acme.com=help@acme.com", "alice@acme.com=support@acme.com sales@acme.com;bob@acme.com=help@acme.com"},
		{LogLevel, "DEBUG", "debug"},
		{PauseOnMetered, "yes", "true"},
		{StartAtLogin, "off", "false"},
	}
	for _, g := range good {
		var v Values
		if err := v.Set(g.k, g.text); err != nil {
			t.Errorf("Set(%s, %q): %v", g.k, g.text, err)
			continue
		}
		if got, _ := v.Text(g.k); got != g.want {
			t.Errorf("Set(%s, %q) = %q, want %q", g.k, g.text, got, g.want)
		}
	}
	bad := []struct {
		k    Key
		text string
	}{
		{BackfillDays, "-2"}, {BackfillDays, "ten"}, {RelayDomains, "customer.com, not a domain"},
		{SendAs, "alice@acme.com"}, {SendAs, "alice=x@y.z"}, {SendAs, "alice@acme.com=nobody"},
		{LogLevel, "verbose"}, {PauseOnMetered, "maybe"}, {"colour", "blue"},
	}
	for _, b := range bad {
		v := Values{BackfillDays: Int(3)}
		err := v.Set(b.k, b.text)
		if err == nil {
			t.Errorf("Set(%s, %q) accepted", b.k, b.text)
			continue
		}
		if !strings.Contains(err.Error(), string(b.k)) {
			t.Errorf("Set(%s, %q): %q does not name the setting", b.k, b.text, err)
		}
		if *v.BackfillDays != 3 || v.Has(LogLevel) || v.Has(SendAs) || v.Has(RelayDomains) {
			t.Errorf("Set(%s, %q) changed the values on error: %+v", b.k, b.text, v)
		}
	}
	if err := (Values{LogLevel: String("loud")}).Validate(); err == nil || !strings.Contains(err.Error(), "log_level") {
		t.Fatalf("Validate: %v", err)
	}
	if err := Default().Validate(); err != nil {
		t.Fatalf("the defaults do not validate: %v", err)
	}
}

// TestValuesJSON: the JSON form config.json and the policy file use names
// each key and leaves out what a layer does not set.
func TestValuesJSON(t *testing.T) {
	b, err := json.Marshal(Values{BackfillDays: Int(BackfillAll), RelayDomains: Strings(), PauseOnMetered: Bool(false)})
	if err != nil {
		t.Fatal(err)
	}
	if want := `{"backfill_days":-1,"relay_domains":[],"pause_on_metered":false}`; string(b) != want {
		t.Fatalf("%s, want %s", b, want)
	}
	var v Values
	if err := json.Unmarshal([]byte(`{"log_level":"warn","send_as":{"a@b.c":["d@b.c"]}}`), &v); err != nil {
		t.Fatal(err)
	}
	if !v.Has(LogLevel) || !v.Has(SendAs) || v.Has(BackfillDays) || v.Has(RelayDomains) {
		t.Fatalf("decoded %+v", v)
	}
}

func TestSourceText(t *testing.T) {
	for s := SourceDefault; s <= SourcePolicyLocked; s++ {
		b, err := s.MarshalText()
		if err != nil {
			t.Fatal(err)
		}
		var back Source
		if err := back.UnmarshalText(b); err != nil || back != s {
			t.Fatalf("%v → %s → %v, %v", s, b, back, err)
		}
	}
	if _, err := Source(99).MarshalText(); err == nil {
		t.Fatal("an unknown source marshalled")
	}
	var s Source
	if err := s.UnmarshalText([]byte("admin")); err == nil {
		t.Fatal("an unknown source name parsed")
	}
}

// TestEffectiveIsACopy: changing a resolved list does not change the layer
// it came from.
func TestEffectiveIsACopy(t *testing.T) {
	l := Layers{Platform: Values{RelayDomains: Strings("a.com")}}
	e := Resolve(l)
	e.RelayDomains[0] = "b.com"
	if (*l.Platform.RelayDomains)[0] != "a.com" {
		t.Fatal("Resolve returned the layer's own slice")
	}
}
