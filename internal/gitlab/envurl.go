package gitlab

import (
	"context"
	"errors"
	"strings"

	gl "gitlab.com/gitlab-org/api/client-go/v2"
)

// SetEnvironmentURL sets the external URL of p's environment named name
// to url (seed 002's callback): the environment of that name is edited
// (PUT /projects/:id/environments/:environment_id), or, when p has none,
// created with it (POST /projects/:id/environments). An environment
// whose URL is url already is left alone. It needs a token with the api
// scope and the Developer role. created reports whether the environment
// was made, changed whether anything was written.
func (c *Client) SetEnvironmentURL(ctx context.Context, p Project, name, url string) (created, changed bool, err error) {
	name, url = strings.TrimSpace(name), strings.TrimSpace(url)
	if name == "" || url == "" {
		return false, false, errors.New("gitlab: environment name and URL are required")
	}
	const purpose, role = "set environment URLs", "Developer"
	var found []*gl.Environment
	_, err = c.writeCall(ctx, p, "environments", purpose, role, func(o ...gl.RequestOptionFunc) (*gl.Response, error) {
		var resp *gl.Response
		var err error
		// name matches exactly (search would match a part).
		found, resp, err = c.gl.Environments.ListEnvironments(p.ref(), &gl.ListEnvironmentsOptions{Name: &name}, o...)
		return resp, err
	})
	if err != nil {
		return false, false, err
	}
	for _, e := range found {
		if e.Name != name {
			continue
		}
		if e.ExternalURL == url {
			return false, false, nil
		}
		_, err = c.writeCall(ctx, p, "environment "+name, purpose, role, func(o ...gl.RequestOptionFunc) (*gl.Response, error) {
			_, resp, err := c.gl.Environments.EditEnvironment(p.ref(), e.ID, &gl.EditEnvironmentOptions{ExternalURL: &url}, o...)
			return resp, err
		})
		return false, err == nil, err
	}
	_, err = c.writeCall(ctx, p, "environment "+name, purpose, role, func(o ...gl.RequestOptionFunc) (*gl.Response, error) {
		_, resp, err := c.gl.Environments.CreateEnvironment(p.ref(), &gl.CreateEnvironmentOptions{Name: &name, ExternalURL: &url}, o...)
		return resp, err
	})
	return err == nil, err == nil, err
}
