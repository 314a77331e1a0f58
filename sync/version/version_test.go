package version

import (
	"os"
	"testing"
)

func TestFromFyneApp(t *testing.T) {
	b, err := os.ReadFile("../../FyneApp.toml")
	if err != nil {
		t.Fatal(err)
	}
	v, err := FromFyneApp(b)
	if err != nil || v == "" {
		t.Fatalf("the repository's FyneApp.toml: %q, %v", v, err)
	}
	if v, err := FromFyneApp([]byte("[Details]\nVersion = \"1.2.3\"\n")); v != "1.2.3" || err != nil {
		t.Fatalf("got %q %v", v, err)
	}
	for _, bad := range []string{"[Details]\nName = \"x\"\n", "[Details]\nVersion = \"1 (beta)\"\n", "not toml ["} {
		if _, err := FromFyneApp([]byte(bad)); err == nil {
			t.Errorf("FromFyneApp(%q) accepted it", bad)
		}
	}
}
