package seal

import "testing"

func benchKey(b *testing.B) *Key {
	k, err := New(Generate())
	if err != nil {
		b.Fatal(err)
	}
	return k
}

// BenchmarkMAC is the keyed hash of an OTP, a fact or a contact method.
func BenchmarkMAC(b *testing.B) {
	k := benchKey(b)
	data := []byte("bench\x00u0000001\x00123456")
	b.ReportAllocs()
	for b.Loop() {
		_ = k.MAC("otp", data)
	}
}

// BenchmarkSeal and BenchmarkOpen are a queued message (about 2 KiB of
// rendered email) sealed on enqueue and opened by the delivery worker.
func BenchmarkSeal(b *testing.B) {
	k := benchKey(b)
	msg := make([]byte, 2048)
	b.SetBytes(int64(len(msg)))
	b.ReportAllocs()
	for b.Loop() {
		_ = k.Seal(msg, "delivery/message/v1/1")
	}
}

func BenchmarkOpen(b *testing.B) {
	k := benchKey(b)
	sealed := k.Seal(make([]byte, 2048), "delivery/message/v1/1")
	b.SetBytes(2048)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := k.Open(sealed, "delivery/message/v1/1"); err != nil {
			b.Fatal(err)
		}
	}
}
