package reset

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/resetd/resetd/internal/delivery"
	"github.com/resetd/resetd/internal/store"
)

// sender picks the From address of an institution's email.
func (s *Service) sender(st Settings) string {
	if len(st.Senders) > 0 {
		return st.Senders[0]
	}
	return s.defaultFrom
}

// queue commits a rendered message's delivery row and send job in tx.
func (s *Service) queue(ctx context.Context, tx store.Tx, now time.Time, st Settings, institutionID, userID, kind string, m delivery.Message) error {
	dest := MaskEmail(m.To)
	if m.Channel == delivery.ChannelSMS {
		dest = MaskPhone(m.To)
	}
	ref, sealed, err := delivery.SealMessage(s.key, m)
	if err != nil {
		return err
	}
	id, err := tx.InsertDelivery(ctx, store.Delivery{
		InstitutionID: institutionID, UserID: userID, Kind: kind, Channel: m.Channel,
		Destination: dest, State: store.DeliveryQueued, CreatedAt: now, MessageRef: ref, Message: sealed,
	})
	if err != nil {
		return err
	}
	return tx.Enqueue(ctx, delivery.QueuedSend{DeliveryID: id, InstitutionID: institutionID, UserID: userID, WebhookURL: st.WebhookURL})
}

// render renders a message to a user whose locale is locale, in the
// language that serves it (Settings.messageLang).
func (s *Service) render(st Settings, locale, kind, channel, to string, d delivery.TemplateData) (delivery.Message, error) {
	d.DisplayName = st.DisplayName
	d.Lang = st.messageLang(locale)
	tmpl, err := s.templatesFor(st)
	var te *delivery.TemplateError
	if errors.As(err, &te) {
		// Overrides stored before a rule existed (or under other link
		// bases) are not run: the message goes out in the default wording.
		s.logger.Error("institution template override refused; sending the default", "err", err)
		tmpl, err = s.templates, nil
	}
	if err != nil {
		return delivery.Message{}, err
	}
	r, err := tmpl.Render(kind, channel, d)
	if err != nil {
		return delivery.Message{}, fmt.Errorf("reset: render %s/%s: %w", kind, channel, err)
	}
	m := delivery.Message{Channel: channel, Kind: kind, To: to, Subject: r.Subject, Text: r.Text, HTML: r.HTML, Language: r.Lang}
	if channel == delivery.ChannelEmail {
		m.From, m.FromName = s.sender(st), st.DisplayName
	}
	return m, nil
}

// emit queues a webhook event when the institution has a webhookUrl.
func (s *Service) emit(ctx context.Context, tx store.Tx, now time.Time, st Settings, institutionID, userID, typ string, data map[string]any) error {
	if st.WebhookURL == "" {
		return nil
	}
	return tx.Enqueue(ctx, delivery.WebhookArgs{URL: st.WebhookURL, Event: delivery.Event{
		ID: uuid.NewString(), Type: typ, Time: now.UTC(), InstitutionID: institutionID, UserID: userID, Data: data,
	}})
}
