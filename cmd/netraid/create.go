package main

import (
	"context"
	"fmt"
	"strings"

	"github.com/dustin/go-humanize"
	"github.com/netraid/netraid/meta"
	"github.com/netraid/netraid/volume"
)

func init() {
	register(command{name: "create", summary: "write superblocks to member disks, making a volume", run: runCreate})
}

func runCreate(_ context.Context, e *env, args []string) error {
	fs := newFlags(e, "create", "[--name NAME] [--chunk SIZE] [--region SIZE] DISK...", `
Make a volume of this node's member disks: each disk gets a checksummed
superblock naming the volume, its geometry and the disk's place in the
stripe. Data is striped across the disks in chunks. On the second
machine of a mirrored pair, run create with the same --name on its own
disks: the two copies must be of the same size.

A disk that already belongs to a netraid volume is refused unless --force.`)
	name := fs.String("name", "netraid", "volume name: letters, digits, '.', '_' and '-'")
	chunk := fs.String("chunk", "64KiB", "stripe chunk size (a power of two, at least 4KiB)")
	region := fs.String("region", "1MiB", "write-intent bitmap region: the unit of resync (a power of two, at least the chunk)")
	force := fs.Bool("force", false, "overwrite disks that belong to another netraid volume")
	if err := parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() == 0 {
		return usagef("give at least one DISK")
	}
	c, err := humanize.ParseBytes(*chunk)
	if err != nil {
		return usagef("bad --chunk %q: %v", *chunk, err)
	}
	r, err := humanize.ParseBytes(*region)
	if err != nil {
		return usagef("bad --region %q: %v", *region, err)
	}
	sb, err := volume.Create(fs.Args(), volume.CreateOptions{Name: *name, Chunk: int64(c), Region: int64(r), Force: *force})
	if err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "created volume %s (%s): %d disk(s), %s usable, chunk %s, region %s\n",
		sb.Name, sb.SetUUID, sb.Members, humanize.IBytes(sb.VolumeSize), humanize.IBytes(sb.Chunk), humanize.IBytes(sb.RegionSize))
	return nil
}

// describe prints a superblock for dump-meta.
func describe(e *env, path string, slot int, sb *meta.Superblock) {
	g := sb.Generations
	fmt.Fprintf(e.stdout, `%s:
  volume        %s (set %s)
  disk          %s, member %d of %d
  created       %s
  geometry      size %s, chunk %s, region %s, data at %s, %s per member
  bitmaps       at %s, %s each
  role          %s, disk %s
  generations   current %016X bitmap %016X history %016X %016X %016X %016X
  resync        %d of %d bytes
  peer set      %s
  failed disks  %#x
  flags         %s
  rebuild       %s
  superblock    slot %d, seq %d
`, path, sb.Name, sb.SetUUID, sb.DiskUUID, sb.Member, sb.Members,
		humanizeUnix(sb.CreatedUnix),
		humanize.IBytes(sb.VolumeSize), humanize.IBytes(sb.Chunk), humanize.IBytes(sb.RegionSize),
		humanize.IBytes(sb.DataOffset), humanize.IBytes(sb.MemberDataSize),
		humanize.IBytes(sb.BitmapOffset), humanize.IBytes(sb.BitmapBytes),
		sb.Role, sb.DiskState,
		g.Current, g.Bitmap, g.History[0], g.History[1], g.History[2], g.History[3],
		sb.ResyncCursor, sb.ResyncTotal, sb.PeerSetUUID, sb.FailedMembers, flagsLine(sb.Flags), rebuildLine(sb), slot, sb.Seq)
}

// flagsLine names a superblock's flags; bits this build does not know
// are shown as a number.
func flagsLine(f uint32) string {
	var out []string
	for _, k := range []struct {
		bit  uint32
		name string
	}{
		{meta.FlagNeedFullSync, "need-full-sync (a replaced member is not rebuilt yet)"},
		{meta.FlagUsedIncomplete, "used-incomplete (took a primary's writes; every region counts as used once promoted)"},
		{meta.FlagNeedFullVerify, "need-full-verify (the next verify compares every region)"},
		{meta.FlagFenced, "fenced (demoted itself when it lost the election: its own changes are discarded at the next meeting)"},
	} {
		if f&k.bit != 0 {
			out = append(out, k.name)
			f &^= k.bit
		}
	}
	if f != 0 {
		out = append(out, fmt.Sprintf("%#x", f))
	}
	if len(out) == 0 {
		return "none"
	}
	return strings.Join(out, ", ")
}

// rebuildLine describes the superblock's rebuild record.
func rebuildLine(sb *meta.Superblock) string {
	if !sb.Rebuilding {
		return "none"
	}
	return fmt.Sprintf("member %d from %s", sb.RebuildMember, humanize.IBytes(sb.RebuildCursor))
}
