package delivery

import (
	"bytes"
	"encoding/json"
	"fmt"
)

// pack encodes m as the plaintext to seal: its JSON, without JSON's HTML
// escaping (the HTML part is escaped by its template, and escaping every
// '<' and '>' again as \u003c grew a reset email by a sixth). Every byte
// of a job's arguments is paid for several times over — River encodes
// them to JSON, SQLite parses and stores them, the fetch and the
// completer read them back — so they are kept small. DEFLATE would
// shrink them threefold but costs more CPU (compress/flate: 37–55 µs for
// a reset email) than the smaller row saves.
func pack(m Message) ([]byte, error) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(m); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(b.Bytes(), []byte("\n")), nil
}

// unpack decodes what pack made (and what json.Marshal made before it:
// the same JSON with HTML escaped).
func unpack(b []byte) (Message, error) {
	var m Message
	if err := json.Unmarshal(b, &m); err != nil {
		return m, fmt.Errorf("message: %w", err)
	}
	return m, nil
}
