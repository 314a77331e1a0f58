package policy

import (
	"bufio"
	"bytes"
	"strings"

	"github.com/BurntSushi/toml"
)

// lineIndex finds the line of a key for errors that the TOML decoder does
// not place itself (cross-field checks, unknown keys). It understands the
// plain layout IT writes: [table] and [[array]] headers and "key = value"
// lines; for anything else it falls back to the table's header, or 0.
type lineIndex struct {
	keys     map[string]int   // "table.key" -> line
	headers  map[string]int   // "table" -> line of its header
	accounts []map[string]int // per [[account]]: key -> line ("" is the header)
}

func indexLines(data []byte) lineIndex {
	idx := lineIndex{keys: map[string]int{}, headers: map[string]int{}}
	table := ""
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 64<<10), maxSize)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		switch {
		case line == "" || strings.HasPrefix(line, "#"):
		case strings.HasPrefix(line, "[["):
			table = strings.TrimSpace(strings.Trim(strings.SplitN(line, "]]", 2)[0], "[ "))
			if table == "account" {
				idx.accounts = append(idx.accounts, map[string]int{"": n})
			}
		case strings.HasPrefix(line, "["):
			table = strings.TrimSpace(strings.Trim(strings.SplitN(line, "]", 2)[0], "[ "))
			idx.headers[table] = n
		default:
			k, _, ok := strings.Cut(line, "=")
			if !ok {
				continue
			}
			k = strings.Trim(strings.TrimSpace(k), `"'`)
			if table == "account" && len(idx.accounts) > 0 {
				idx.accounts[len(idx.accounts)-1][k] = n
				continue
			}
			full := k
			if table != "" {
				full = table + "." + k
			}
			if _, seen := idx.keys[full]; !seen {
				idx.keys[full] = n
			}
		}
	}
	return idx
}

// find returns the line of a key (or of its table), 0 if unknown.
func (idx lineIndex) find(k toml.Key) int {
	if len(k) >= 2 && k[0] == "account" {
		// Undecoded keys of an array of tables name no index: the first
		// account with that key.
		for _, a := range idx.accounts {
			if n, ok := a[k[len(k)-1]]; ok {
				return n
			}
		}
	}
	if n, ok := idx.keys[k.String()]; ok {
		return n
	}
	for i := len(k); i > 0; i-- {
		if n, ok := idx.headers[toml.Key(k[:i]).String()]; ok {
			return n
		}
	}
	return 0
}

// account returns the line of key in the i-th [[account]] table (its
// header when the key is not there).
func (idx lineIndex) account(i int, key string) int {
	if i >= len(idx.accounts) {
		return 0
	}
	if n, ok := idx.accounts[i][key]; ok {
		return n
	}
	return idx.accounts[i][""]
}
