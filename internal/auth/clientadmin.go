package auth

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/resetd/resetd/internal/secret"
	"github.com/resetd/resetd/internal/store"
)

// Client management for operators (SPEC §9). Every change is audited.

// MaxKeepOld bounds how long a rotated-out client secret keeps working.
const MaxKeepOld = 168 * time.Hour

// Client states.
const (
	ClientActive   = "active"
	ClientDisabled = "disabled"
)

// ErrNoSuchClient is an unknown (or deleted) client id.
var ErrNoSuchClient = errors.New("auth: no such client")

// ClientInfo is a client as operators see it: never its secret or hash.
type ClientInfo struct {
	ID            string    `json:"client_id"`
	Name          string    `json:"name"`
	InstitutionID string    `json:"institution"`
	Scopes        []string  `json:"scopes"`
	AuthMethod    string    `json:"auth_method"`
	State         string    `json:"state"`
	CreatedAt     time.Time `json:"created"`
	UpdatedAt     time.Time `json:"updated,omitzero"`
	// OldSecretUntil is when a rotated-out secret stops working (zero: none).
	OldSecretUntil time.Time `json:"old_secret_until,omitzero"`
}

func clientInfo(c store.Client, now time.Time) ClientInfo {
	ci := ClientInfo{ID: c.ID, Name: c.Name, InstitutionID: c.InstitutionID, Scopes: c.Scopes, AuthMethod: c.AuthMethod, State: ClientActive, CreatedAt: c.CreatedAt, UpdatedAt: c.UpdatedAt}
	if ci.Scopes == nil {
		ci.Scopes = []string{}
	}
	if ci.AuthMethod == "" {
		ci.AuthMethod = MethodSecretBasic
	}
	if !c.DisabledAt.IsZero() {
		ci.State = ClientDisabled
	}
	if len(c.OldSecretHash) > 0 && now.Before(c.OldSecretUntil) {
		ci.OldSecretUntil = c.OldSecretUntil
	}
	return ci
}

// ListClients lists the clients (of one institution when institutionID is
// not empty), oldest first.
func (s *Service) ListClients(ctx context.Context, institutionID string) ([]ClientInfo, error) {
	cs, err := s.store.Clients(ctx)
	if err != nil {
		return nil, err
	}
	out := []ClientInfo{}
	for _, c := range cs {
		if institutionID == "" || c.InstitutionID == institutionID {
			out = append(out, clientInfo(c, s.now()))
		}
	}
	return out, nil
}

// ShowClient is one client.
func (s *Service) ShowClient(ctx context.Context, id string) (ClientInfo, error) {
	c, err := s.client(ctx, id)
	if err != nil {
		return ClientInfo{}, err
	}
	return clientInfo(c, s.now()), nil
}

func (s *Service) client(ctx context.Context, id string) (store.Client, error) {
	c, err := s.store.Client(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		return c, fmt.Errorf("%w: %q", ErrNoSuchClient, id)
	}
	return c, err
}

// change applies fn to a client, saves it and audits action.
func (s *Service) change(ctx context.Context, id, action string, fn func(*store.Client, time.Time) error) (store.Client, error) {
	c, err := s.client(ctx, id)
	if err != nil {
		return c, err
	}
	now := s.now()
	if err := fn(&c, now); err != nil {
		return c, err
	}
	c.UpdatedAt = now
	if err := s.store.UpdateClient(ctx, c); err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return c, fmt.Errorf("%w: %q", ErrNoSuchClient, id)
		}
		return c, err
	}
	return c, s.auditClient(ctx, now, action, c)
}

func (s *Service) auditClient(ctx context.Context, now time.Time, action string, c store.Client) error {
	return s.store.Update(ctx, func(tx store.Tx) error {
		return tx.InsertAudit(ctx, store.AuditRecord{Time: now, Action: action, InstitutionID: c.InstitutionID, ClientID: c.ID, Outcome: "ok"})
	})
}

// DisableClient stops a client: invalid_client at the token endpoint at
// once, and its tokens refused by every replica within refreshEvery.
func (s *Service) DisableClient(ctx context.Context, id string) error {
	_, err := s.change(ctx, id, "client.disable", func(c *store.Client, now time.Time) error {
		if c.DisabledAt.IsZero() {
			c.DisabledAt = now
		}
		return nil
	})
	if err == nil {
		err = s.reload(ctx)
	}
	return err
}

// EnableClient undoes DisableClient.
func (s *Service) EnableClient(ctx context.Context, id string) error {
	_, err := s.change(ctx, id, "client.enable", func(c *store.Client, _ time.Time) error {
		c.DisabledAt = time.Time{}
		return nil
	})
	if err == nil {
		err = s.reload(ctx)
	}
	return err
}

// DeleteClient deletes a client; its tokens are refused as a disabled one's.
func (s *Service) DeleteClient(ctx context.Context, id string) error {
	c, err := s.client(ctx, id)
	if err != nil {
		return err
	}
	now := s.now()
	if err := s.store.DeleteClient(ctx, id, now); err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return fmt.Errorf("%w: %q", ErrNoSuchClient, id)
		}
		return err
	}
	if err := s.auditClient(ctx, now, "client.delete", c); err != nil {
		return err
	}
	return s.reload(ctx)
}

// RotateSecret gives a client a new secret, returned once; the old one
// keeps working for keepOld (0: not at all, at most MaxKeepOld).
func (s *Service) RotateSecret(ctx context.Context, id string, keepOld time.Duration) (string, ClientInfo, error) {
	if keepOld < 0 || keepOld > MaxKeepOld {
		return "", ClientInfo{}, fmt.Errorf("auth: --keep-old must be between 0 and %s", MaxKeepOld)
	}
	fresh := secret.Token(32)
	c, err := s.change(ctx, id, "client.rotate_secret", func(c *store.Client, now time.Time) error {
		c.OldSecretHash, c.OldSecretUntil = nil, time.Time{}
		if keepOld > 0 {
			c.OldSecretHash, c.OldSecretUntil = c.SecretHash, now.Add(keepOld)
		}
		c.SecretHash = hashSecret(fresh)
		return nil
	})
	if err != nil {
		return "", ClientInfo{}, err
	}
	return fresh, clientInfo(c, s.now()), nil
}

// SetScopes replaces a client's scopes. Tokens already issued keep the
// scopes they carry until they expire (at most TokenTTL); disable the
// client to cut them off at once.
func (s *Service) SetScopes(ctx context.Context, id string, scopes []string) (ClientInfo, error) {
	if err := checkScopes(scopes); err != nil {
		return ClientInfo{}, err
	}
	c, err := s.change(ctx, id, "client.set_scopes", func(c *store.Client, _ time.Time) error {
		c.Scopes = slices.Compact(slices.Sorted(slices.Values(scopes)))
		return nil
	})
	if err != nil {
		return ClientInfo{}, err
	}
	return clientInfo(c, s.now()), nil
}

func checkScopes(scopes []string) error {
	for _, sc := range scopes {
		if !slices.Contains(AllScopes, sc) {
			return fmt.Errorf("%w: unknown scope %q", ErrInvalidScope, sc)
		}
	}
	if len(scopes) == 0 {
		return fmt.Errorf("%w: at least one scope", ErrInvalidScope)
	}
	return nil
}
