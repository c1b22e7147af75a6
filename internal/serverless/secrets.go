package serverless

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ssm"
)

// Parameters reads SSM parameters; *ssm.Client is one.
type Parameters interface {
	GetParameters(ctx context.Context, in *ssm.GetParametersInput, opts ...func(*ssm.Options)) (*ssm.GetParametersOutput, error)
}

// maxNamesPerRequest is the most names one GetParameters request takes
// (its Names: 1 to 10 items).
const maxNamesPerRequest = 10

// LoadSecrets fills in the secrets the environment does not give from SSM
// Parameter Store, decrypted, once (a cold start), in one GetParameters
// request: the GitLab token unless GITLAB_TOKEN is set, the webhook secret
// unless LABTRAIL_WEBHOOK_SECRET is, and the reads' API token. A parameter
// variable set to "" is not read (the webhook endpoint then stays off, or
// only the store's API tokens open the reads), nor is one whose secret the
// environment gives. Errors name the parameter, never its value.
func LoadSecrets(ctx context.Context, c *Config, ps Parameters) error {
	type secret struct {
		name, variable string
		set            func(string)
	}
	var wanted []secret
	if c.GitLab.Token == "" {
		if c.TokenParameter == "" {
			return errors.New("no GitLab token: set LABTRAIL_SSM_TOKEN_PARAMETER to the SSM parameter holding it (or GITLAB_TOKEN)")
		}
		wanted = append(wanted, secret{c.TokenParameter, "LABTRAIL_SSM_TOKEN_PARAMETER", func(v string) { c.GitLab.Token = v }})
	}
	if len(c.WebhookSecrets) == 0 && c.WebhookSecretParameter != "" {
		wanted = append(wanted, secret{c.WebhookSecretParameter, "LABTRAIL_SSM_WEBHOOK_SECRET_PARAMETER", func(v string) { c.WebhookSecrets = splitList(v) }})
	}
	if c.APIToken == "" && c.APITokenParameter != "" {
		wanted = append(wanted, secret{c.APITokenParameter, "LABTRAIL_SSM_API_TOKEN_PARAMETER", func(v string) { c.APIToken = v }})
	}
	if len(wanted) == 0 {
		return nil
	}
	var names, asked []string
	for _, s := range wanted {
		if !slices.Contains(names, s.name) {
			names = append(names, s.name)
		}
		asked = append(asked, s.name+" ("+s.variable+")")
	}
	values, invalid, err := getParameters(ctx, ps, names)
	if err != nil {
		return fmt.Errorf("read SSM parameters %s: %w", strings.Join(asked, ", "), err)
	}
	for _, s := range wanted {
		v, ok := values[s.name]
		switch {
		case invalid[s.name]:
			return fmt.Errorf("SSM parameter %s (%s) not found: create it with aws ssm put-parameter --name %s --type SecureString --value ..., or point %s at another",
				s.name, s.variable, s.name, s.variable)
		case !ok:
			return fmt.Errorf("SSM parameter %s (%s): SSM's answer neither gave it nor listed it as invalid", s.name, s.variable)
		case v == "":
			return fmt.Errorf("SSM parameter %s (%s) is empty", s.name, s.variable)
		}
		s.set(v)
	}
	return nil
}

// getParameters reads the named SecureString (or String) parameters,
// decrypted, with as few GetParameters requests as it takes (up to 10
// names each). It returns the values by the name asked for, and the names
// SSM listed as invalid (those that do not exist).
func getParameters(ctx context.Context, ps Parameters, names []string) (values map[string]string, invalid map[string]bool, err error) {
	values, invalid = map[string]string{}, map[string]bool{}
	for batch := range slices.Chunk(names, maxNamesPerRequest) {
		out, err := ps.GetParameters(ctx, &ssm.GetParametersInput{Names: batch, WithDecryption: aws.Bool(true)})
		if err != nil {
			return nil, nil, err
		}
		for _, n := range out.InvalidParameters {
			invalid[n] = true
		}
		// A parameter comes back under its name, its selector apart
		// (name:version, name:label); a name asked for may be its ARN.
		for _, p := range out.Parameters {
			name, arn, sel := aws.ToString(p.Name), aws.ToString(p.ARN), aws.ToString(p.Selector)
			for _, asked := range batch {
				if asked == name || asked == name+sel || (arn != "" && (asked == arn || asked == arn+sel)) {
					values[asked] = aws.ToString(p.Value)
				}
			}
		}
	}
	return values, invalid, nil
}
