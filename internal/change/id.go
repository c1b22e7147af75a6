package change

import (
	"fmt"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Stable ids: the same GitLab object gets the same id whichever way it came
// in, so re-ingesting it updates one record instead of adding another.

// MergeRequestID is mr-<project_id>-<iid>.
func MergeRequestID(projectID, iid int64) string { return fmt.Sprintf("mr-%d-%d", projectID, iid) }

// PipelineID is pipeline-<project_id>-<id>.
func PipelineID(projectID, id int64) string { return fmt.Sprintf("pipeline-%d-%d", projectID, id) }

// JobID is job-<project_id>-<id>.
func JobID(projectID, id int64) string { return fmt.Sprintf("job-%d-%d", projectID, id) }

// CommitID is commit-<project_id>-<sha>.
func CommitID(projectID int64, sha string) string { return fmt.Sprintf("commit-%d-%s", projectID, sha) }

// IssueID is issue-<project_id>-<iid>.
func IssueID(projectID, iid int64) string { return fmt.Sprintf("issue-%d-%d", projectID, iid) }

// NoteID is note-<project_id>-<id>.
func NoteID(projectID, id int64) string { return fmt.Sprintf("note-%d-%d", projectID, id) }

// BranchID is branch-<project_id>-<name>.
func BranchID(projectID int64, name string) string {
	return fmt.Sprintf("branch-%d-%s", projectID, name)
}

// TagID is tag-<project_id>-<name>.
func TagID(projectID int64, name string) string { return fmt.Sprintf("tag-%d-%s", projectID, name) }

// ReleaseID is release-<project_id>-<tag>.
func ReleaseID(projectID int64, tag string) string {
	return fmt.Sprintf("release-%d-%s", projectID, tag)
}

// DeploymentID is deployment-<project_id>-<id>.
func DeploymentID(projectID, id int64) string { return fmt.Sprintf("deployment-%d-%d", projectID, id) }

// ReportedDeploymentID is deployment-<project_id>-ext-<environment>-<key>:
// a deployment reported to labtrail's API, whose GitLab id (if GitLab
// knows it at all) the reporter does not know. key is the reporting job's
// id, or the sha deployed when no job reported it.
func ReportedDeploymentID(projectID int64, environment, key string) string {
	return fmt.Sprintf("deployment-%d-ext-%s-%s", projectID, environment, key)
}

// ReportedEnvironmentID is environment-<project_id>-ext-<name>: an
// environment known from a reported deployment.
func ReportedEnvironmentID(projectID int64, name string) string {
	return fmt.Sprintf("environment-%d-ext-%s", projectID, name)
}

// EnvironmentID is environment-<project_id>-<id>.
func EnvironmentID(projectID, id int64) string {
	return fmt.Sprintf("environment-%d-%d", projectID, id)
}

// ImageID is image-<project_id>-<repository_id>-<tag>-<digest>.
func ImageID(projectID, repositoryID int64, tag, digest string) string {
	return fmt.Sprintf("image-%d-%d-%s-%s", projectID, repositoryID, tag, digest)
}

// idPrefixes are the kinds' id prefixes, which are their names except for
// merge requests.
var idPrefixes = map[string]Kind{
	"mr": KindMergeRequest, "pipeline": KindPipeline, "job": KindJob, "commit": KindCommit,
	"issue": KindIssue, "note": KindNote, "branch": KindBranch, "tag": KindTag, "release": KindRelease,
	"deployment": KindDeployment, "environment": KindEnvironment, "image": KindImage,
}

// ParsedID is what a stable id says: the kind and project of its object.
type ParsedID struct {
	Kind      Kind
	ProjectID int64
}

// ParseID reads a stable id by the grammar of its kind, the one the
// constructors above write:
//
//   - numbers (project ids, iids, ids, repository ids) are positive,
//     written in decimal without sign or leading zeros;
//   - a commit's sha is 7 to 64 lowercase hex digits;
//   - a branch, tag or release name is non-empty valid UTF-8 without
//     control characters;
//   - an image's tag is such a name and its digest <algorithm>:<hex>,
//     the algorithm lowercase letters and digits, without "-";
//   - a reported deployment's rest is ext-<environment>-<job id or sha>
//     and a reported environment's ext-<name>, the environment a name.
//
// The error says which part is wrong, so a payload with a bad id can be
// refused with a clear reason.
func ParseID(id string) (ParsedID, error) {
	prefix, rest, ok := strings.Cut(id, "-")
	kind, known := idPrefixes[prefix]
	if !ok || !known {
		return ParsedID{}, fmt.Errorf("id %q: unknown kind prefix %q", id, prefix)
	}
	pidText, rest, _ := strings.Cut(rest, "-")
	pid, err := positive("project id", pidText)
	if err != nil {
		return ParsedID{}, fmt.Errorf("id %q: %w", id, err)
	}
	out := ParsedID{Kind: kind, ProjectID: pid}
	switch kind {
	case KindCommit:
		err = sha(rest)
	case KindBranch, KindTag, KindRelease:
		err = name(string(kind)+" name", rest)
	case KindImage:
		err = imageParts(rest)
	case KindMergeRequest, KindIssue:
		_, err = positive("iid", rest)
	case KindDeployment, KindEnvironment:
		if ext, ok := strings.CutPrefix(rest, "ext-"); ok {
			err = reported(kind, ext)
		} else {
			_, err = positive(string(kind)+" id", rest)
		}
	default:
		_, err = positive(string(kind)+" id", rest)
	}
	if err != nil {
		return ParsedID{}, fmt.Errorf("id %q: %w", id, err)
	}
	return out, nil
}

// ValidID reports what is wrong with id, or nil for a well-formed one.
func ValidID(id string) error {
	_, err := ParseID(id)
	return err
}

func positive(what, s string) (int64, error) {
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n <= 0 || strconv.FormatInt(n, 10) != s {
		return 0, fmt.Errorf("%s %q is not a positive number", what, s)
	}
	return n, nil
}

func sha(s string) error {
	if len(s) < 7 || len(s) > 64 || strings.IndexFunc(s, func(r rune) bool { return !isHex(r) }) >= 0 {
		return fmt.Errorf("sha %q is not 7 to 64 lowercase hex digits", s)
	}
	return nil
}

func isHex(r rune) bool { return '0' <= r && r <= '9' || 'a' <= r && r <= 'f' }

func name(what, s string) error {
	switch {
	case s == "":
		return fmt.Errorf("empty %s", what)
	case !utf8.ValidString(s):
		return fmt.Errorf("%s %q is not valid UTF-8", what, s)
	case strings.IndexFunc(s, unicode.IsControl) >= 0:
		return fmt.Errorf("%s %q has a control character", what, s)
	}
	return nil
}

// reported checks the part after "ext-" of a reported deployment's or
// environment's id.
func reported(kind Kind, s string) error {
	if kind == KindEnvironment {
		return name("environment name", s)
	}
	i := strings.LastIndexByte(s, '-')
	if i < 0 {
		return fmt.Errorf("reported deployment %q has no environment and job id or sha", s)
	}
	env, key := s[:i], s[i+1:]
	if err := name("environment name", env); err != nil {
		return err
	}
	if _, err := positive("job id", key); err != nil && sha(key) != nil {
		return fmt.Errorf("reported deployment's key %q is neither a job id nor a sha", key)
	}
	return nil
}

// imageParts checks <repository_id>-<tag>-<digest>; the tag may hold "-",
// the digest does not.
func imageParts(s string) error {
	repo, rest, _ := strings.Cut(s, "-")
	if _, err := positive("repository id", repo); err != nil {
		return err
	}
	i := strings.LastIndexByte(rest, '-')
	if i < 0 {
		return fmt.Errorf("image %q has no tag and digest", rest)
	}
	tag, digest := rest[:i], rest[i+1:]
	if err := name("image tag", tag); err != nil {
		return err
	}
	algo, hex, _ := strings.Cut(digest, ":")
	if algo == "" || hex == "" ||
		strings.IndexFunc(algo, func(r rune) bool { return !('a' <= r && r <= 'z' || '0' <= r && r <= '9') }) >= 0 ||
		strings.IndexFunc(hex, func(r rune) bool { return !isHex(r) }) >= 0 {
		return fmt.Errorf("image digest %q is not <algorithm>:<lowercase hex>", digest)
	}
	return nil
}

// CheckEventID reports what is wrong with e's id: malformed (ParseID), of
// another kind than e's, or of another project than e's project_id (when
// it has one). The GitLab client refuses events it would make with such
// an id.
func CheckEventID(e Event) error {
	id, err := ParseID(e.ID)
	switch {
	case err != nil:
		return err
	case id.Kind != e.Kind:
		return fmt.Errorf("id %q is of kind %s, the event of kind %s", e.ID, id.Kind, e.Kind)
	case e.ProjectID != 0 && id.ProjectID != e.ProjectID:
		return fmt.Errorf("id %q is of project %d, the event of project %d", e.ID, id.ProjectID, e.ProjectID)
	}
	return nil
}
