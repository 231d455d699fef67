package reset

import (
	"context"
	"errors"

	"github.com/resetd/resetd/internal/delivery"
	"github.com/resetd/resetd/internal/store"
)

// templatesFor returns the institution's templates, parsing overrides once.
func (s *Service) templatesFor(st Settings) (*delivery.Templates, error) {
	if len(st.Templates) == 0 {
		return s.templates, nil
	}
	key, err := jsonMarshal(st.Templates) // map keys marshal sorted: a stable key
	if err != nil {
		return nil, err
	}
	if t, ok := s.overrides.Load(string(key)); ok {
		return t.(*delivery.Templates), nil
	}
	t, err := s.templates.WithOverrides(st.Templates)
	if err != nil {
		return nil, err
	}
	s.overrides.Store(string(key), t)
	return t, nil
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
		if p.Templates != nil {
			// A template that does not parse is refused now, not at send time.
			if _, err := s.templatesFor(st); err != nil {
				return invalid("templates", err.Error())
			}
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
