package brand

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"image/png"
	"strings"
)

// MaxLogoBytes bounds a logo, decoded.
const MaxLogoBytes = 64 << 10

// MaxLogoSide bounds a PNG logo's width and height (pixels): a header
// logo needs far less, and decoding a larger one costs memory.
const MaxLogoSide = 2048

// The kinds of logo, as their media types.
const (
	KindPNG = "image/png"
	KindSVG = "image/svg+xml"
)

// Logo is a validated logo.
type Logo struct {
	ContentType string // KindPNG or KindSVG
	Data        []byte
}

// DataURL is the logo's canonical form, the one settings store:
// data:TYPE;base64,… with standard padded base64 and no line breaks.
func (l Logo) DataURL() string {
	return "data:" + l.ContentType + ";base64," + base64.StdEncoding.EncodeToString(l.Data)
}

// Version names the logo's content, short and URL-safe: it goes into the
// logo's URL and ETag, so a changed logo is a new URL.
func Version(dataURL string) string {
	sum := sha256.Sum256([]byte(dataURL))
	return hex.EncodeToString(sum[:8])
}

// DecodeStored reads a logo in its stored form (DataURL) without checking
// its content again: that was done when it was stored, and serving it must
// not cost a PNG decode per request.
func DecodeStored(dataURL string) (Logo, error) {
	for _, kind := range []string{KindPNG, KindSVG} {
		if rest, ok := strings.CutPrefix(dataURL, "data:"+kind+";base64,"); ok {
			data, err := base64.StdEncoding.DecodeString(rest)
			if err != nil || len(data) == 0 {
				return Logo{}, errors.New("brand: stored logo is not valid base64")
			}
			return Logo{ContentType: kind, Data: data}, nil
		}
	}
	return Logo{}, errors.New("brand: stored logo is not a PNG or SVG data: URL")
}

var pngSignature = []byte("\x89PNG\r\n\x1a\n")

// ParseLogo accepts a PNG or SVG logo as base64, plain or as a data: URL
// (data:image/png;base64,… or data:image/svg+xml;base64,…), and returns it
// checked: a PNG must decode whole, within MaxLogoSide, with nothing after
// its end; an SVG must pass CheckSVG. A plain base64 logo's kind is what
// its bytes are; a data: URL's must be what it says.
func ParseLogo(s string) (Logo, error) {
	declared := ""
	payload := s
	if rest, ok := strings.CutPrefix(s, "data:"); ok {
		mediaType, data, ok := strings.Cut(rest, ",")
		if !ok {
			return Logo{}, errors.New("the data: URL has no comma before its data")
		}
		switch strings.ToLower(mediaType) {
		case KindPNG + ";base64":
			declared = KindPNG
		case KindSVG + ";base64":
			declared = KindSVG
		default:
			return Logo{}, fmt.Errorf("a logo's data: URL must be data:image/png;base64,… or data:image/svg+xml;base64,…, not data:%.40s,…", mediaType)
		}
		payload = data
	}
	// Base64 grows data by 4/3; line breaks (which the decoder skips) are
	// allowed a little room. The decoded length is checked again below.
	if len(payload) > base64.StdEncoding.EncodedLen(MaxLogoBytes)*21/20+4 {
		return Logo{}, fmt.Errorf("the logo is larger than %d KiB", MaxLogoBytes>>10)
	}
	data, err := base64.StdEncoding.DecodeString(payload)
	if err != nil {
		return Logo{}, errors.New("the logo is not valid base64 (standard alphabet, padded)")
	}
	if len(data) > MaxLogoBytes {
		return Logo{}, fmt.Errorf("the logo is %d bytes, larger than %d KiB", len(data), MaxLogoBytes>>10)
	}
	if len(data) == 0 {
		return Logo{}, errors.New("the logo is empty (send \"\" to remove it)")
	}
	kind := declared
	if kind == "" {
		switch t := bytes.TrimLeft(bytes.TrimPrefix(data, []byte("\xef\xbb\xbf")), " \t\r\n"); {
		case bytes.HasPrefix(data, pngSignature):
			kind = KindPNG
		case bytes.HasPrefix(t, []byte("<")):
			kind = KindSVG
		default:
			return Logo{}, errors.New("the logo is neither a PNG nor an SVG")
		}
	}
	switch kind {
	case KindPNG:
		err = checkPNG(data)
	default:
		err = CheckSVG(data)
	}
	if err != nil {
		return Logo{}, err
	}
	return Logo{ContentType: kind, Data: data}, nil
}

// checkPNG decodes the whole image (every chunk's CRC, the compressed
// data), after bounding its size from the header, and refuses bytes after
// IEND: a file that is a PNG to one reader and something else to another
// is refused.
func checkPNG(data []byte) error {
	if !bytes.HasPrefix(data, pngSignature) {
		return errors.New("the logo is not a PNG (no PNG signature)")
	}
	cfg, err := png.DecodeConfig(bytes.NewReader(data))
	if err != nil {
		return errors.New("the logo is not a valid PNG: " + strings.TrimPrefix(err.Error(), "png: "))
	}
	if cfg.Width < 1 || cfg.Height < 1 || cfg.Width > MaxLogoSide || cfg.Height > MaxLogoSide {
		return fmt.Errorf("the PNG logo is %d×%d pixels; each side must be between 1 and %d", cfg.Width, cfg.Height, MaxLogoSide)
	}
	rd := bytes.NewReader(data)
	if _, err := png.Decode(rd); err != nil {
		return errors.New("the logo is not a valid PNG: " + strings.TrimPrefix(err.Error(), "png: "))
	}
	// The decoder reads chunk by chunk and stops right after IEND's CRC.
	if rd.Len() != 0 {
		return fmt.Errorf("the PNG logo has %d bytes after its end (IEND)", rd.Len())
	}
	return nil
}
