package delivery_test

import (
	"testing"
	"time"

	"github.com/resetd/resetd/internal/delivery"
	"github.com/resetd/resetd/internal/seal"
)

var benchData = delivery.TemplateData{
	DisplayName: "Bench Bank", UserName: "user0000001",
	Link:        "https://bank.example/reset?token=Oy_qCz7tXbq3vV1n0mJ9x0lS3o2oQk8pQyW3b1a2c3d",
	DisputeLink: "https://resetd.example/reset/dispute?token=Qk8pQyW3b1a2c3dOy_qCz7tXbq3vV1n0mJ9x0lS3o2",
	ExpiresIn:   time.Hour,
}

// BenchmarkRenderResetLinkEmail renders the subject, text and HTML of a
// reset-link email from the parsed (once, at start) templates.
func BenchmarkRenderResetLinkEmail(b *testing.B) {
	t := delivery.DefaultTemplates()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := t.Render(delivery.KindResetLink, delivery.ChannelEmail, benchData); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkRenderOTPSMS(b *testing.B) {
	t := delivery.DefaultTemplates()
	d := delivery.TemplateData{DisplayName: "Bench Bank", Code: "123456", ExpiresIn: 10 * time.Minute}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := t.Render(delivery.KindOTP, delivery.ChannelSMS, d); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkSealMessage is a rendered message packed for its delivery row.
func BenchmarkSealMessage(b *testing.B) {
	key, err := seal.New(seal.Generate())
	if err != nil {
		b.Fatal(err)
	}
	r, err := delivery.DefaultTemplates().Render(delivery.KindResetLink, delivery.ChannelEmail, benchData)
	if err != nil {
		b.Fatal(err)
	}
	m := delivery.Message{Channel: delivery.ChannelEmail, Kind: delivery.KindResetLink, To: "u0000001@bench.example", Subject: r.Subject, Text: r.Text, HTML: r.HTML}
	b.ReportAllocs()
	for b.Loop() {
		if _, _, err := delivery.SealMessage(key, m); err != nil {
			b.Fatal(err)
		}
	}
}
