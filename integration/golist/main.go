// golist prints a tar stream's entries as Go's archive/tar reads them (the reader containerd,
// moby and containers/storage unpack layers with), as one JSON document:
//
//	{"entries": [{"name", "type", "size", "mode", "uid", "gid", "linkname", "offset"}...], "error": null | "..."}
//
// name and linkname are bytes, printable ASCII kept and every other byte (and `\`) written
// `\xNN`; type is the type flag byte; offset is where the reader stands once Next returns (the
// entry's data starts there; for a `g` header, its records end there). Each entry's data is
// read to its end, as an unpacker does, so errors in it (a truncated file, a sparse map that
// does not fit its data) are errors of the archive. Only the standard library: `harden tar-list`
// prints the same document from harden's reader, and the differential tests compare the two.
//
// Usage: golist FILE (or `-` for stdin).
package main

import (
	"archive/tar"
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"
)

type counter struct {
	r io.Reader
	n int64
}

func (c *counter) Read(b []byte) (int, error) {
	k, err := c.r.Read(b)
	c.n += int64(k)
	return k, err
}

type entry struct {
	Name     string `json:"name"`
	Type     int    `json:"type"`
	Size     int64  `json:"size"`
	Mode     int64  `json:"mode"`
	UID      int    `json:"uid"`
	GID      int    `json:"gid"`
	Linkname string `json:"linkname"`
	Offset   int64  `json:"offset"`
}

type listing struct {
	Entries []entry `json:"entries"`
	Error   *string `json:"error"`
}

func escape(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 0x20 && c < 0x7f && c != '\\' {
			b.WriteByte(c)
		} else {
			fmt.Fprintf(&b, "\\x%02x", c)
		}
	}
	return b.String()
}

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: golist FILE|-")
		os.Exit(2)
	}
	var in io.Reader = os.Stdin
	if os.Args[1] != "-" {
		f, err := os.Open(os.Args[1])
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(2)
		}
		defer f.Close()
		in = f
	}
	// A reader that is not an io.Seeker, so Go skips data by reading it (as from a pipe).
	c := &counter{r: bufio.NewReaderSize(in, 1<<16)}
	tr := tar.NewReader(c)
	out := listing{Entries: []entry{}}
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			msg := err.Error()
			out.Error = &msg
			break
		}
		out.Entries = append(out.Entries, entry{
			Name: escape(h.Name), Type: int(h.Typeflag), Size: h.Size, Mode: h.Mode,
			UID: h.Uid, GID: h.Gid, Linkname: escape(h.Linkname), Offset: c.n,
		})
		if _, err := io.Copy(io.Discard, tr); err != nil {
			msg := err.Error()
			out.Error = &msg
			break
		}
	}
	enc := json.NewEncoder(os.Stdout)
	if err := enc.Encode(out); err != nil {
		os.Exit(2)
	}
}
