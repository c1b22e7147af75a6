// Package deploy holds labtrail's deployment files and the tests that check
// them with what runs without Docker or a cluster: the repository root's
// Dockerfile (its build line is run and the binary checked as the image
// holds it), systemd/labtrail.service and kubernetes/*.yaml. It has no code.
package deploy
