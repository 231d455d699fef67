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
	ref, sealed, err := SealMessage(key, m)
	if err != nil {
		t.Fatal(err)
	}
	got, err := OpenMessage(key, ref, sealed)
	if err != nil || got != m {
		t.Fatalf("opened %+v, %v; want %+v", got, err, m)
	}
	plain, _ := json.Marshal(m)
	if len(sealed) >= len(plain) {
		t.Errorf("sealed %d bytes for %d bytes of JSON: not packed", len(sealed), len(plain))
	}
	// Bound to its reference: another message's does not open it, and
	// each message gets a reference of its own.
	ref2, _, err := SealMessage(key, m)
	if err != nil {
		t.Fatal(err)
	}
	if string(ref2) == string(ref) {
		t.Fatal("two messages got the same reference")
	}
	if _, err := OpenMessage(key, ref2, sealed); err == nil {
		t.Error("a sealed message opened under another reference")
	}
	// A message re-sealed under a new key opens under the new ring only
	// with its reference.
	next, _ := seal.NewRing(seal.Generate(), seal.Generate())
	if _, _, err := ResealMessage(next, ref, sealed); err == nil {
		t.Error("a ring without the message's key re-sealed it")
	}
}

// A message an earlier version sealed into the job, bound to the
// delivery's id, still opens; another id does not open it.
func TestOpenLegacyJobMessage(t *testing.T) {
	t.Parallel()
	key, _ := seal.New(seal.Generate())
	m := packTestMessage(t)
	b, err := pack(m)
	if err != nil {
		t.Fatal(err)
	}
	a := SendArgs{DeliveryID: 7, Sealed: key.Seal(b, fmt.Sprintf("%s/%d", sealContext, 7))}
	got, err := Open(key, a)
	if err != nil || got != m {
		t.Fatalf("opened %+v, %v; want %+v", got, err, m)
	}
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
