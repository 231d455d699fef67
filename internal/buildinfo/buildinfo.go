// Package buildinfo says which resetd is running: the module version and
// the VCS revision the Go toolchain stamped into the binary (runtime/debug),
// for `resetd version`, the start-up log and resetd_build_info.
package buildinfo

import (
	"runtime"
	"runtime/debug"
)

// Info is what the binary knows of its own build.
type Info struct {
	Version   string `json:"version"`            // module version, "(devel)" for a checkout build
	Revision  string `json:"revision,omitempty"` // VCS commit, when built from a checkout
	Time      string `json:"time,omitempty"`     // commit time (RFC 3339)
	Modified  bool   `json:"modified,omitempty"` // the checkout had uncommitted changes
	GoVersion string `json:"goVersion"`
}

// Read reports the running binary's build. override, when not empty, is a
// version set at link time (-ldflags "-X main.version=…") and wins over
// the module's.
func Read(override string) Info {
	in := Info{Version: "(devel)", GoVersion: runtime.Version()}
	if bi, ok := debug.ReadBuildInfo(); ok {
		if bi.Main.Version != "" {
			in.Version = bi.Main.Version
		}
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				in.Revision = s.Value
			case "vcs.time":
				in.Time = s.Value
			case "vcs.modified":
				in.Modified = s.Value == "true"
			}
		}
	}
	if override != "" {
		in.Version = override
	}
	return in
}

// String is one line: "v1.2.0 (revision 1a2b3c4d5e6f, 2026-11-30T10:00:00Z, modified) go1.24.1".
func (in Info) String() string {
	s := in.Version
	if in.Revision != "" {
		rev := in.Revision
		if len(rev) > 12 {
			rev = rev[:12]
		}
		s += " (revision " + rev
		if in.Time != "" {
			s += ", " + in.Time
		}
		if in.Modified {
			s += ", modified"
		}
		s += ")"
	}
	return s + " " + in.GoVersion
}
