package refplatform

import (
	"net/http"
	"regexp"
	"time"
)

var goosRE = regexp.MustCompile(`^[a-z0-9]+$`)

// pair serves POST /v1/pair.
func (p *Platform) pair(w http.ResponseWriter, r *http.Request, _ call) error {
	body, err := readJSON(w, r)
	if err != nil {
		return err
	}
	var (
		code      string
		deviceRaw []byte
		d         Device
	)
	if err := decodeObject(body, "pairing request", map[string]any{"code": &code, "device": (*rawJSON)(&deviceRaw)}); err != nil {
		return err
	}
	if deviceRaw == nil {
		return refuse(http.StatusBadRequest, "pairing request: device is missing")
	}
	if err := decodeObject(deviceRaw, "device", map[string]any{"name": &d.Name, "os": &d.OS, "version": &d.Version}); err != nil {
		return err
	}
	switch {
	case code == "":
		return refuse(http.StatusBadRequest, "pairing request: code is missing")
	case d.Name == "" || d.Version == "":
		return refuse(http.StatusBadRequest, "device: name and version are required")
	case !goosRE.MatchString(d.OS):
		return refuse(http.StatusBadRequest, "device: os %q is not a GOOS", d.OS)
	}
	dev, err := p.redeem(code, d)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusCreated, map[string]string{"device_id": dev.ID, "token": dev.token})
}

// redeem uses up a pairing code and registers the device.
func (p *Platform) redeem(code string, d Device) (*device, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	used, ok := p.codes[code]
	switch {
	case !ok:
		return nil, refuse(http.StatusNotFound, "unknown pairing code")
	case used:
		return nil, refuse(http.StatusGone, "pairing code already used")
	}
	p.codes[code] = true
	d.ID = "dev_" + randomHex(8)
	d.PairedAt = time.Now()
	dev := &device{Device: d, token: randomHex(32)}
	p.devices = append(p.devices, dev)
	p.tokens[dev.token] = dev
	p.changedLocked()
	return dev, nil
}

// rawJSON keeps a member's JSON text for a nested decodeObject; null leaves
// it nil.
type rawJSON []byte

func (j *rawJSON) UnmarshalJSON(b []byte) error {
	if string(b) != "null" {
		*j = append((*j)[:0], b...)
	}
	return nil
}
