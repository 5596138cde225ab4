// Command tlogverify checks a C2SP tlog-tiles log with golang.org/x/mod/sumdb, independently of veilwatch.
//
//	tlogverify -key VKEY (-url http://host/log/ | -dir FOLDER) [-old CHECKPOINT_FILE]...
//
// It verifies the checkpoint's signature with sumdb/note, reads every entry bundle, and checks the
// inclusion of every entry (tlog.ProveRecord / tlog.CheckRecord over tiles read through
// tlog.TileHashReader), then the consistency of each older checkpoint with the latest one
// (tlog.ProveTree / tlog.CheckTree). It prints one line per check and exits 1 on any failure.
package main

import (
	"encoding/base64"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
)

const height = 8

var errNotFound = errors.New("not found")

type multiFlag []string

func (m *multiFlag) String() string     { return strings.Join(*m, ",") }
func (m *multiFlag) Set(v string) error { *m = append(*m, v); return nil }

// source reads the log's files from a URL prefix or a mirrored folder.
type source struct {
	url string
	dir string
}

func (s source) get(path string) ([]byte, error) {
	if s.dir != "" {
		data, err := os.ReadFile(filepath.Join(s.dir, filepath.FromSlash(path)))
		if os.IsNotExist(err) {
			return nil, errNotFound
		}
		return data, err
	}
	resp, err := http.Get(strings.TrimSuffix(s.url, "/") + "/" + path)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusNotFound {
		return nil, errNotFound
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: HTTP %d", path, resp.StatusCode)
	}
	return io.ReadAll(resp.Body)
}

// tiles is a tlog.TileReader over tlog-tiles paths (sumdb's paths without the height element).
type tiles struct {
	src   source
	mu    sync.Mutex
	saved map[tlog.Tile][]byte
}

func tilesPath(t tlog.Tile) string {
	return "tile/" + strings.TrimPrefix(t.Path(), fmt.Sprintf("tile/%d/", height))
}

func (r *tiles) Height() int { return height }

func (r *tiles) ReadTiles(ts []tlog.Tile) ([][]byte, error) {
	out := make([][]byte, len(ts))
	for i, t := range ts {
		r.mu.Lock()
		data, ok := r.saved[t]
		r.mu.Unlock()
		if ok {
			out[i] = data
			continue
		}
		data, err := r.src.get(tilesPath(t))
		if errors.Is(err, errNotFound) && t.W < 1<<height {
			// The spec lets a log delete a partial tile once the full one exists.
			full := t
			full.W = 1 << height
			data, err = r.src.get(tilesPath(full))
			if err == nil && len(data) >= t.W*tlog.HashSize {
				data = data[:t.W*tlog.HashSize]
			}
		}
		if err != nil {
			return nil, fmt.Errorf("%s: %w", tilesPath(t), err)
		}
		out[i] = data
	}
	return out, nil
}

func (r *tiles) SaveTiles(ts []tlog.Tile, data [][]byte) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for i, t := range ts {
		r.saved[t] = data[i]
	}
}

type checkpoint struct {
	origin string
	tree   tlog.Tree
}

func openCheckpoint(msg []byte, verifier note.Verifier) (checkpoint, error) {
	n, err := note.Open(msg, note.VerifierList(verifier))
	if err != nil {
		return checkpoint{}, fmt.Errorf("checkpoint signature: %w", err)
	}
	lines := strings.Split(n.Text, "\n")
	if len(lines) < 4 {
		return checkpoint{}, errors.New("checkpoint: too few lines")
	}
	size, err := strconv.ParseInt(lines[1], 10, 64)
	if err != nil || size < 0 {
		return checkpoint{}, fmt.Errorf("checkpoint: bad size %q", lines[1])
	}
	raw, err := base64.StdEncoding.DecodeString(lines[2])
	if err != nil || len(raw) != tlog.HashSize {
		return checkpoint{}, fmt.Errorf("checkpoint: bad root %q", lines[2])
	}
	var root tlog.Hash
	copy(root[:], raw)
	if lines[0] != verifier.Name() {
		return checkpoint{}, fmt.Errorf("checkpoint origin %q is not the key's name %q", lines[0], verifier.Name())
	}
	return checkpoint{lines[0], tlog.Tree{N: size, Hash: root}}, nil
}

// decodeBundle splits an entry bundle: big-endian uint16 length-prefixed entries.
func decodeBundle(data []byte) ([][]byte, error) {
	var entries [][]byte
	for len(data) > 0 {
		if len(data) < 2 {
			return nil, errors.New("bundle ends inside a length")
		}
		n := int(data[0])<<8 | int(data[1])
		if len(data) < 2+n {
			return nil, errors.New("bundle ends inside an entry")
		}
		entries = append(entries, data[2:2+n])
		data = data[2+n:]
	}
	return entries, nil
}

func readEntries(src source, size int64) ([][]byte, error) {
	var all [][]byte
	for n := int64(0); n*256 < size; n++ {
		t := tlog.Tile{H: height, L: 0, N: n, W: 256}
		if left := size - n*256; left < 256 {
			t.W = int(left)
		}
		path := "tile/entries/" + strings.TrimPrefix(tilesPath(t), "tile/0/")
		data, err := src.get(path)
		if errors.Is(err, errNotFound) && t.W < 256 {
			t.W = 256
			data, err = src.get("tile/entries/" + strings.TrimPrefix(tilesPath(t), "tile/0/"))
		}
		if err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		entries, err := decodeBundle(data)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		want := int(size - n*256)
		if want > 256 {
			want = 256
		}
		if len(entries) < want {
			return nil, fmt.Errorf("%s: %d entries, want %d", path, len(entries), want)
		}
		all = append(all, entries[:want]...)
	}
	return all, nil
}

// proveAll checks the inclusion of every entry, on all CPUs; it returns how many verified.
func proveAll(entries [][]byte, tree tlog.Tree, hr tlog.HashReader, workers int) (int64, error) {
	var wg sync.WaitGroup
	var mu sync.Mutex
	var ok int64
	var first error
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			var mine int64
			for i := w; i < len(entries); i += workers {
				proof, err := tlog.ProveRecord(tree.N, int64(i), hr)
				if err == nil {
					err = tlog.CheckRecord(proof, tree.N, tree.Hash, int64(i), tlog.RecordHash(entries[i]))
				}
				if err != nil {
					mu.Lock()
					if first == nil {
						first = fmt.Errorf("entry %d: %w", i, err)
					}
					mu.Unlock()
					continue
				}
				mine++
			}
			mu.Lock()
			ok += mine
			mu.Unlock()
		}(w)
	}
	wg.Wait()
	return ok, first
}

func run() error {
	var olds multiFlag
	url := flag.String("url", "", "the log's URL prefix (serving checkpoint and tile/)")
	dir := flag.String("dir", "", "a folder mirroring the log's files")
	key := flag.String("key", "", "the log's verifier key (name+id+key)")
	workers := flag.Int("workers", 2, "goroutines proving inclusion")
	flag.Var(&olds, "old", "an older checkpoint file whose tree the latest must extend (repeatable)")
	flag.Parse()
	if (*url == "") == (*dir == "") || *key == "" {
		return errors.New("usage: tlogverify -key VKEY (-url URL | -dir FOLDER) [-old FILE]...")
	}
	verifier, err := note.NewVerifier(*key)
	if err != nil {
		return fmt.Errorf("-key: %w", err)
	}
	src := source{url: *url, dir: *dir}
	msg, err := src.get("checkpoint")
	if err != nil {
		return fmt.Errorf("checkpoint: %w", err)
	}
	latest, err := openCheckpoint(msg, verifier)
	if err != nil {
		return err
	}
	fmt.Printf("signature   OK %s size %d\n", latest.origin, latest.tree.N)
	hr := tlog.TileHashReader(latest.tree, &tiles{src: src, saved: map[tlog.Tile][]byte{}})
	entries, err := readEntries(src, latest.tree.N)
	if err != nil {
		return err
	}
	ok, err := proveAll(entries, latest.tree, hr, *workers)
	fmt.Printf("inclusion   %d/%d verified\n", ok, latest.tree.N)
	if err != nil {
		return err
	}
	return checkOlds(olds, verifier, latest, hr)
}

func checkOlds(olds []string, verifier note.Verifier, latest checkpoint, hr tlog.HashReader) error {
	verified := 0
	for _, path := range olds {
		msg, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		old, err := openCheckpoint(msg, verifier)
		if err != nil {
			return fmt.Errorf("%s: %w", path, err)
		}
		proof, err := tlog.ProveTree(latest.tree.N, old.tree.N, hr)
		if err == nil {
			err = tlog.CheckTree(proof, latest.tree.N, latest.tree.Hash, old.tree.N, old.tree.Hash)
		}
		if err != nil {
			fmt.Printf("consistency %d/%d verified\n", verified, len(olds))
			return fmt.Errorf("consistency %d -> %d: %w", old.tree.N, latest.tree.N, err)
		}
		verified++
	}
	fmt.Printf("consistency %d/%d verified\n", verified, len(olds))
	return nil
}

func main() {
	if err := run(); err != nil {
		fmt.Println("FAIL", err)
		os.Exit(1)
	}
	fmt.Println("OK")
}
