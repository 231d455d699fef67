package reset

import (
	"context"
	"errors"
	"strings"

	"github.com/resetd/resetd/internal/delivery"
	"github.com/resetd/resetd/internal/store"
)

// templatesFor returns the institution's templates: the defaults, or the
// defaults with its overrides, checked and parsed once and then cached.
func (s *Service) templatesFor(st Settings) (*delivery.Templates, error) {
	if len(st.Templates) == 0 {
		return s.templates, nil
	}
	// The check depends on the link bases (URLs an HTML part may hold,
	// the link's length), so they are part of the key; map keys marshal
	// sorted, so the key is stable.
	key, err := jsonMarshal(struct {
		T map[string]string `json:"t"`
		L []string          `json:"l"`
	}{st.Templates, st.LinkBases})
	if err != nil {
		return nil, err
	}
	if t, ok := s.overrides.get(string(key)); ok {
		return t, nil
	}
	t, err := s.templates.WithOverrides(st.Templates, s.overrideRules(st))
	if err != nil {
		return nil, err
	}
	size := 0
	for _, src := range st.Templates {
		size += len(src)
	}
	s.overrides.put(string(key), size, t)
	return t, nil
}

// overrideRules are the bounds an institution's overrides are checked
// against: its link bases, and the longest value of each placeholder.
func (s *Service) overrideRules(st Settings) delivery.OverrideRules {
	link := 0
	for _, b := range st.LinkBases {
		link = max(link, len(b))
	}
	const token = len("?token=") + 64 // a token is 43 characters; room to spare
	return delivery.OverrideRules{
		LinkBases: st.LinkBases,
		MaxLen: map[string]int{
			"DisplayName": maxDisplayName,
			"UserName":    4 * maxUsernameRunes,
			"Link":        link + token,
			"DisputeLink": len(s.publicURL) + len("/reset/dispute") + token,
			"Code":        10,
			"ExpiresIn":   24,
			"Changed":     32,
		},
	}
}

// checkTemplates refuses settings whose overrides break a rule (400,
// naming the part, the construct and where it stands).
func (s *Service) checkTemplates(st Settings) error {
	if _, err := s.templatesFor(st); err != nil {
		var te *delivery.TemplateError
		if errors.As(err, &te) {
			return invalid("templates", te.Error())
		}
		return err
	}
	return nil
}

// PutInstitution creates or updates an institution (the operator's CLI).
// Empty arguments keep what is stored.
func (s *Service) PutInstitution(ctx context.Context, id, displayName string, linkBases, senders []string, isDefault bool) (Settings, error) {
	if !ValidID(id) {
		return Settings{}, invalid("institutionId", "malformed institution id")
	}
	var out Settings
	err := s.store.Update(ctx, func(tx store.Tx) error {
		now := s.now()
		in, err := tx.LockInstitution(ctx, id)
		switch {
		case errors.Is(err, store.ErrNotFound):
			in = store.Institution{ID: id, CreatedAt: now}
		case err != nil:
			return err
		}
		st, err := decodeSettings(in.Settings, s.publicURL)
		if err != nil {
			return err
		}
		var p SettingsPatch
		if displayName != "" {
			p.DisplayName = &displayName
		}
		if len(linkBases) > 0 {
			p.LinkBases = &linkBases
		}
		if len(senders) > 0 {
			p.Senders = &senders
		}
		st = p.Apply(st)
		if err := st.Validate(); err != nil {
			return err
		}
		if err := s.checkTemplates(st); err != nil {
			return err
		}
		in.Settings, err = jsonMarshal(st)
		if err != nil {
			return err
		}
		in.IsDefault = isDefault || in.IsDefault
		in.UpdatedAt = now
		out = st
		return tx.PutInstitution(ctx, in)
	})
	return out, err
}

// Settings returns an institution's settings.
func (s *Service) Settings(ctx context.Context, institutionID string) (Settings, error) {
	if err := checkIDs(institutionID); err != nil {
		return Settings{}, err
	}
	var st Settings
	err := s.store.View(ctx, func(tx store.ReadTx) (err error) {
		st, err = s.settingsIn(ctx, tx, institutionID)
		return err
	})
	return st, err
}

// UpdateSettings applies a partial update atomically: concurrent updates
// of different fields never lose one another's change.
func (s *Service) UpdateSettings(ctx context.Context, a Actor, institutionID string, p SettingsPatch) (Settings, error) {
	if err := checkIDs(institutionID); err != nil {
		return Settings{}, err
	}
	if err := p.normalizeBranding(); err != nil {
		return Settings{}, err
	}
	if p.WebhookURL != nil && *p.WebhookURL != "" {
		// Resolving takes a network round trip: done before the write
		// transaction, and again at every connection (DNS rebinding).
		if err := validateWebhookURL(*p.WebhookURL); err != nil {
			return Settings{}, err
		}
		if err := s.webhooks.CheckURL(ctx, *p.WebhookURL); err != nil {
			return Settings{}, invalid("webhookUrl", "webhookUrl: "+strings.TrimPrefix(err.Error(), "delivery: "))
		}
	}
	var out Settings
	err := s.store.Update(ctx, func(tx store.Tx) error {
		now := s.now()
		in, err := tx.LockInstitution(ctx, institutionID)
		if err != nil {
			return mapNotFound(err)
		}
		st, err := decodeSettings(in.Settings, s.publicURL)
		if err != nil {
			return err
		}
		st = p.Apply(st)
		if err := st.Validate(); err != nil {
			return err
		}
		// Overrides are checked on every change, not only their own: the
		// link bases decide which URLs an HTML override may hold.
		if err := s.checkTemplates(st); err != nil {
			return err
		}
		raw, err := jsonMarshal(st)
		if err != nil {
			return err
		}
		if err := tx.SetSettings(ctx, institutionID, raw, now); err != nil {
			return err
		}
		out = st
		return s.audit(ctx, tx, now, a, "settings.update", institutionID, "", "ok")
	})
	return out, err
}
