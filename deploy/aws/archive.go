package main

import (
	"archive/zip"
	"bytes"
	"debug/elf"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// zipDir is where the function's deployment package is written, relative to
// the program's directory (Pulumi runs the program there); .gitignore'd.
const zipDir = ".build"

// bootstrapZip returns the path of a zip holding the bootstrap binary at
// path, as Lambda's provided.al2023 runtime wants it: one file named
// bootstrap, executable. A path ending in .zip is taken as already packaged.
//
// Pulumi could zip the file itself (an AssetArchive), but its zips carry no
// file modes (pulumi/pulumi#3593), so the bootstrap would not be executable.
// The zip is written byte for byte the same for the same binary (fixed
// times, fixed order), so an unchanged binary is not redeployed.
func bootstrapZip(path string) (string, error) {
	if strings.HasSuffix(path, ".zip") {
		if _, err := os.Stat(path); err != nil {
			return "", fmt.Errorf("labtrail:bootstrap: %w", err)
		}
		return path, nil
	}
	bin, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return "", fmt.Errorf("labtrail:bootstrap: %s does not exist; build it first with `make lambda` in the repository root (or set labtrail:bootstrap to its path)", path)
	}
	if err != nil {
		return "", fmt.Errorf("labtrail:bootstrap: %w", err)
	}
	if err := checkArm64(bin); err != nil {
		return "", fmt.Errorf("labtrail:bootstrap: %s %w; build it with `make lambda` (GOOS=linux GOARCH=arm64)", path, err)
	}
	data, err := zipBootstrap(bin)
	if err != nil {
		return "", err
	}
	if err := os.MkdirAll(zipDir, 0o755); err != nil {
		return "", err
	}
	out := filepath.Join(zipDir, "bootstrap.zip")
	if old, err := os.ReadFile(out); err == nil && bytes.Equal(old, data) {
		return out, nil
	}
	return out, os.WriteFile(out, data, 0o644)
}

// checkArm64 says why bin is not a Linux arm64 executable, the only kind
// the function (architecture arm64) can start.
func checkArm64(bin []byte) error {
	f, err := elf.NewFile(bytes.NewReader(bin))
	if err != nil {
		return errors.New("is not a Linux executable")
	}
	if f.Machine != elf.EM_AARCH64 {
		return fmt.Errorf("is built for %s, not arm64", strings.TrimPrefix(f.Machine.String(), "EM_"))
	}
	return nil
}

// zipBootstrap packs bin as bootstrap, mode 0755, at a fixed time.
func zipBootstrap(bin []byte) ([]byte, error) {
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	h := &zip.FileHeader{Name: "bootstrap", Method: zip.Deflate, Modified: time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)}
	h.SetMode(0o755)
	w, err := zw.CreateHeader(h)
	if err != nil {
		return nil, err
	}
	if _, err := w.Write(bin); err != nil {
		return nil, err
	}
	if err := zw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}
