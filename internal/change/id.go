package change

import "fmt"

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

// EnvironmentID is environment-<project_id>-<id>.
func EnvironmentID(projectID, id int64) string {
	return fmt.Sprintf("environment-%d-%d", projectID, id)
}

// ImageID is image-<project_id>-<repository_id>-<tag>-<digest>.
func ImageID(projectID, repositoryID int64, tag, digest string) string {
	return fmt.Sprintf("image-%d-%d-%s-%s", projectID, repositoryID, tag, digest)
}
