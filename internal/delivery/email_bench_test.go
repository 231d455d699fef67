package delivery_test

import (
	"testing"

	"github.com/resetd/resetd/internal/delivery"
	"github.com/resetd/resetd/internal/mailtest"
)

// BenchmarkSMTPSenderParallel measures sends per second through the session
// pool to a loopback server; the target is at least 1,000/s.
func BenchmarkSMTPSenderParallel(b *testing.B) {
	srv := mailtest.NewServer(b)
	sender, err := delivery.NewSMTPSender(srv.URL("noreply@demobank.example"))
	if err != nil {
		b.Fatalf("NewSMTPSender: %v", err)
	}
	b.Cleanup(func() { _ = sender.Close() })
	msg := delivery.Message{
		To: "jane@customer.example", Subject: "Reset your Demo Bank password",
		Text: "Open https://reset.demobank.example/r/token to reset.\n",
		HTML: `<p><a href="https://reset.demobank.example/r/token">Reset password</a></p>`,
	}
	b.SetParallelism(2) // 2 x GOMAXPROCS senders, more than the pool keeps idle
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if err := sender.Send(b.Context(), msg); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
}
