package delivery

import (
	"encoding/json"
	"fmt"
	"testing"

	"github.com/resetd/resetd/internal/seal"
)

func packTestMessage(t *testing.T) Message {
	t.Helper()
	r, err := DefaultTemplates().Render(KindResetLink, ChannelEmail, TemplateData{
		DisplayName: "Bank <&> \"Co\"", UserName: "ünïcode user",
		Link: "https://bank.example/reset?token=Oy_qCz7tXbq3vV1n0mJ9x0lS3o2oQk8pQyW3b1a2c3d", DisputeLink: "https://resetd.example/reset/dispute?token=x",
	})
	if err != nil {
		t.Fatal(err)
	}
	return Message{Channel: ChannelEmail, Kind: KindResetLink, To: "a@b.example", From: "n@bank.example", FromName: "Bank", Subject: r.Subject, Text: r.Text, HTML: r.HTML}
}

// What is sealed opens to the same message, and is smaller than
// json.Marshal's JSON of it (the point of packing it).
func TestSealOpenRoundTripIsCompact(t *testing.T) {
	t.Parallel()
	key, _ := seal.New(seal.Generate())
	m := packTestMessage(t)
	a, err := Seal(key, 7, m)
	if err != nil {
		t.Fatal(err)
	}
	got, err := Open(key, a)
	if err != nil || got != m {
		t.Fatalf("opened %+v, %v; want %+v", got, err, m)
	}
	plain, _ := json.Marshal(m)
	if len(a.Sealed) >= len(plain) {
		t.Errorf("sealed %d bytes for %d bytes of JSON: not packed", len(a.Sealed), len(plain))
	}
	// Bound to its delivery: another id does not open it.
	a.DeliveryID = 8
	if _, err := Open(key, a); err == nil {
		t.Error("a sealed message opened under another delivery id")
	}
}

// A message queued by an earlier version (json.Marshal's JSON) still opens.
func TestOpenBareJSONMessage(t *testing.T) {
	t.Parallel()
	key, _ := seal.New(seal.Generate())
	m := packTestMessage(t)
	b, _ := json.Marshal(m)
	a := SendArgs{DeliveryID: 3, Sealed: key.Seal(b, fmt.Sprintf("%s/%d", sealContext, 3))}
	got, err := Open(key, a)
	if err != nil || got != m {
		t.Fatalf("opened %+v, %v", got, err)
	}
}

// A plaintext that is neither fails to open with an error, never a panic.
func TestUnpackRefusesGarbage(t *testing.T) {
	t.Parallel()
	for _, b := range [][]byte{nil, {0x01, 0xff, 0xfe}, []byte("not json"), []byte(`{"text":`)} {
		if _, err := unpack(b); err == nil {
			t.Errorf("unpack(%q) = nil error", b)
		}
	}
}
