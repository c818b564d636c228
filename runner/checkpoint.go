package runner

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"math"
	"os"
	"path/filepath"
	"time"
)

// CheckpointFile is the checkpoint's name inside a run directory.
const CheckpointFile = "checkpoint.bin"

// checkpointMagic opens every checkpoint file.
const checkpointMagic = "EXPCCKPT"

// CheckpointVersion is the checkpoint layout this package writes and reads.
const CheckpointVersion = 1

// Checkpoint is a run's state after Step completed steps.
//
// File layout (little-endian): "EXPCCKPT", u32 version, u32 hash length,
// plan hash, u64 step, i64 start time (Unix ns), f64 wall seconds, f64
// training seconds, u64 state length, the Executable.SaveState bytes, and a
// CRC-32 (IEEE) of everything before it.
type Checkpoint struct {
	PlanHash     string
	Step         int       // completed steps; the next step to run
	Started      time.Time // when the run first started
	WallSeconds  float64   // wall time of the run so far, all sessions
	TrainSeconds float64   // time spent in training steps so far
	State        []byte    // Executable.SaveState
}

// AppendBinary appends the encoded checkpoint to dst.
func (c *Checkpoint) AppendBinary(dst []byte) ([]byte, error) {
	le := binary.LittleEndian
	start := len(dst)
	dst = append(dst, checkpointMagic...)
	dst = le.AppendUint32(dst, CheckpointVersion)
	dst = le.AppendUint32(dst, uint32(len(c.PlanHash)))
	dst = append(dst, c.PlanHash...)
	dst = le.AppendUint64(dst, uint64(c.Step))
	dst = le.AppendUint64(dst, uint64(c.Started.UnixNano()))
	dst = le.AppendUint64(dst, math.Float64bits(c.WallSeconds))
	dst = le.AppendUint64(dst, math.Float64bits(c.TrainSeconds))
	dst = le.AppendUint64(dst, uint64(len(c.State)))
	dst = append(dst, c.State...)
	return le.AppendUint32(dst, crc32.ChecksumIEEE(dst[start:])), nil
}

// UnmarshalBinary decodes a checkpoint; State aliases b.
func (c *Checkpoint) UnmarshalBinary(b []byte) error {
	if len(b) < len(checkpointMagic) || !bytes.Equal(b[:len(checkpointMagic)], []byte(checkpointMagic)) {
		return errors.New("not an expc checkpoint (bad magic)")
	}
	if len(b) < 12 {
		return errTruncated
	}
	le := binary.LittleEndian
	if v := le.Uint32(b[8:]); v != CheckpointVersion {
		return fmt.Errorf("checkpoint format version %d is not supported (this expc reads version %d)", v, CheckpointVersion)
	}
	if len(b) < 16 {
		return errTruncated
	}
	body, sum := b[:len(b)-4], le.Uint32(b[len(b)-4:])
	r := reader{b: body[12:]}
	hash := string(r.bytes(int(r.u32())))
	step := r.u64()
	started := int64(r.u64())
	wall := math.Float64frombits(r.u64())
	train := math.Float64frombits(r.u64())
	n := r.u64()
	if r.bad || n > uint64(len(r.b)) {
		return errTruncated
	}
	state := r.bytes(int(n))
	if len(r.b) != 0 {
		return fmt.Errorf("checkpoint has %d unexpected trailing bytes", len(r.b))
	}
	if crc32.ChecksumIEEE(body) != sum {
		return errors.New("checkpoint is corrupt (checksum mismatch)")
	}
	*c = Checkpoint{PlanHash: hash, Step: int(step), Started: time.Unix(0, started), WallSeconds: wall, TrainSeconds: train, State: state}
	return nil
}

var errTruncated = errors.New("checkpoint is truncated")

// reader decodes little-endian fields, remembering whether it ran short.
type reader struct {
	b   []byte
	bad bool
}

func (r *reader) bytes(n int) []byte {
	if r.bad || n < 0 || n > len(r.b) {
		r.bad = true
		return nil
	}
	v := r.b[:n:n]
	r.b = r.b[n:]
	return v
}

func (r *reader) u32() uint32 {
	if b := r.bytes(4); b != nil {
		return binary.LittleEndian.Uint32(b)
	}
	return 0
}

func (r *reader) u64() uint64 {
	if b := r.bytes(8); b != nil {
		return binary.LittleEndian.Uint64(b)
	}
	return 0
}

// ReadCheckpoint reads and validates the checkpoint file at path (a run
// directory is accepted too: its checkpoint.bin is read).
func ReadCheckpoint(path string) (*Checkpoint, error) {
	if st, err := os.Stat(path); err == nil && st.IsDir() {
		path = filepath.Join(path, CheckpointFile)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	c := new(Checkpoint)
	if err := c.UnmarshalBinary(b); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return c, nil
}

// writeCheckpoint writes c to path atomically.
func writeCheckpoint(path string, c *Checkpoint) error {
	b, err := c.AppendBinary(make([]byte, 0, len(c.State)+128))
	if err != nil {
		return err
	}
	return writeFileAtomic(path, b)
}

// writeFileAtomic writes data to a temporary file next to path, syncs it and
// renames it over path, so readers see the old file or the new one, never a
// partial one. The temporary file is removed on failure.
func writeFileAtomic(path string, data []byte) (err error) {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*.tmp")
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(f.Name())
		}
	}()
	if _, err = f.Write(data); err != nil {
		return err
	}
	if err = f.Sync(); err != nil {
		return err
	}
	if err = f.Chmod(0o644); err != nil {
		return err
	}
	if err = f.Close(); err != nil {
		return err
	}
	return os.Rename(f.Name(), path)
}
