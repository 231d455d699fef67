package main

import (
	"encoding/base64"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"

	"github.com/resetd/resetd/internal/password"
)

// UserFromKeycloakCmd turns a Keycloak realm or users export into the CSV
// `user import` reads, with each password credential rewritten in the form of
// SPEC §13 (docs/MIGRATION.md). It touches no database.
type UserFromKeycloakCmd struct {
	File string `arg:"" name:"file" help:"Keycloak export JSON (kc.sh export, or a realm-users-N.json file; '-' for standard input)."`
}

// keycloakUser is the part of a Keycloak UserRepresentation the import needs.
type keycloakUser struct {
	ID          string              `json:"id"`
	Username    string              `json:"username"`
	Email       string              `json:"email"`
	Attributes  map[string][]string `json:"attributes"`
	Credentials []struct {
		Type           string `json:"type"`
		SecretData     string `json:"secretData"`
		CredentialData string `json:"credentialData"`
	} `json:"credentials"`
}

// keycloakHash converts one Keycloak password credential — secretData
// {"value","salt"} (padded standard base64) and credentialData
// {"hashIterations","algorithm","additionalParameters"} — to a hash resetd
// verifies. The result is checked with password.CheckHash, so what this
// writes, `user import` accepts.
func keycloakHash(secretData, credentialData string) (string, error) {
	var secret struct {
		Value string `json:"value"`
		Salt  string `json:"salt"`
	}
	var cred struct {
		HashIterations int                 `json:"hashIterations"`
		Algorithm      string              `json:"algorithm"`
		Params         map[string][]string `json:"additionalParameters"`
	}
	if err := json.Unmarshal([]byte(secretData), &secret); err != nil {
		return "", fmt.Errorf("secretData: %w", err)
	}
	if err := json.Unmarshal([]byte(credentialData), &cred); err != nil {
		return "", fmt.Errorf("credentialData: %w", err)
	}
	value, err := base64.StdEncoding.DecodeString(secret.Value)
	if err != nil {
		return "", fmt.Errorf("secretData value: %w", err)
	}
	salt, err := base64.StdEncoding.DecodeString(secret.Salt)
	if err != nil {
		return "", fmt.Errorf("secretData salt: %w", err)
	}
	raw := base64.RawStdEncoding.EncodeToString
	var h string
	switch cred.Algorithm {
	case "pbkdf2-sha256", "pbkdf2-sha512":
		h = fmt.Sprintf("$%s$i=%d,l=%d$%s$%s", cred.Algorithm, cred.HashIterations, len(value), raw(salt), raw(value))
	case "argon2":
		param := func(name, def string) string {
			if v := cred.Params[name]; len(v) == 1 {
				return v[0]
			}
			return def
		}
		variant := map[string]string{"id": "argon2id", "i": "argon2i"}[param("type", "id")]
		if variant == "" || param("version", "1.3") != "1.3" {
			return "", fmt.Errorf("argon2 type %q version %q: only id and i, version 1.3, are accepted", param("type", "id"), param("version", "1.3"))
		}
		m, errM := strconv.Atoi(param("memory", ""))
		p, errP := strconv.Atoi(param("parallelism", ""))
		if errM != nil || errP != nil {
			return "", errors.New("argon2 memory or parallelism missing")
		}
		h = fmt.Sprintf("$%s$v=19$m=%d,t=%d,p=%d$%s$%s", variant, m, cred.HashIterations, p, raw(salt), raw(value))
	default:
		return "", fmt.Errorf("algorithm %q is not one resetd verifies (pbkdf2-sha256, pbkdf2-sha512, argon2)", cred.Algorithm)
	}
	if err := password.CheckHash(h); err != nil {
		return "", err
	}
	return h, nil
}

// Run writes the CSV to standard output; a user whose password cannot be
// converted is still written, without a hash (they reset it at their first
// login), and reported on standard error. Exit status 1 when any was.
func (c *UserFromKeycloakCmd) Run(g *Globals) error {
	var src io.Reader = g.stdin
	if c.File != "-" {
		f, err := os.Open(c.File)
		if err != nil {
			return err
		}
		defer f.Close()
		src = f
	}
	var export struct {
		Users []keycloakUser `json:"users"`
	}
	if err := json.NewDecoder(src).Decode(&export); err != nil {
		return fmt.Errorf("reading the Keycloak export: %w", err)
	}
	w := csv.NewWriter(g.stdout)
	if err := w.Write([]string{"userId", "username", "email", "phone", "passwordHash"}); err != nil {
		return err
	}
	unconverted := 0
	for _, u := range export.Users {
		var hash string
		for _, cr := range u.Credentials {
			if cr.Type != "password" {
				continue
			}
			h, err := keycloakHash(cr.SecretData, cr.CredentialData)
			if err != nil {
				unconverted++
				fmt.Fprintf(g.stderr, "user %s: password not converted: %v\n", u.ID, err)
				break
			}
			hash = h
			break
		}
		phone := ""
		if v := u.Attributes["phoneNumber"]; len(v) > 0 {
			phone = v[0]
		}
		if err := w.Write([]string{u.ID, u.Username, u.Email, phone, hash}); err != nil {
			return err
		}
	}
	w.Flush()
	if err := w.Error(); err != nil {
		return err
	}
	fmt.Fprintf(g.stderr, "%d users, %d passwords not converted\n", len(export.Users), unconverted)
	if unconverted > 0 {
		return exitError(1)
	}
	return nil
}
