package serverless

import (
	"context"
	"errors"
	"fmt"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ssm"
	"github.com/aws/aws-sdk-go-v2/service/ssm/types"
)

// Parameters reads SSM parameters; *ssm.Client is one.
type Parameters interface {
	GetParameter(ctx context.Context, in *ssm.GetParameterInput, opts ...func(*ssm.Options)) (*ssm.GetParameterOutput, error)
}

// LoadSecrets fills in the secrets the environment does not give from SSM
// Parameter Store, decrypted, once (a cold start): the GitLab token unless
// GITLAB_TOKEN is set, the webhook secret unless LABTRAIL_WEBHOOK_SECRET
// is, and the reads' API token. A parameter variable set to "" is not
// read (the webhook endpoint then stays off, or only the store's API
// tokens open the reads). Errors name the parameter, never its value.
func LoadSecrets(ctx context.Context, c *Config, ps Parameters) error {
	if c.GitLab.Token == "" {
		if c.TokenParameter == "" {
			return errors.New("no GitLab token: set LABTRAIL_SSM_TOKEN_PARAMETER to the SSM parameter holding it (or GITLAB_TOKEN)")
		}
		v, err := parameter(ctx, ps, c.TokenParameter, "LABTRAIL_SSM_TOKEN_PARAMETER")
		if err != nil {
			return err
		}
		c.GitLab.Token = v
	}
	if len(c.WebhookSecrets) == 0 && c.WebhookSecretParameter != "" {
		v, err := parameter(ctx, ps, c.WebhookSecretParameter, "LABTRAIL_SSM_WEBHOOK_SECRET_PARAMETER")
		if err != nil {
			return err
		}
		c.WebhookSecrets = splitList(v)
	}
	if c.APIToken == "" && c.APITokenParameter != "" {
		v, err := parameter(ctx, ps, c.APITokenParameter, "LABTRAIL_SSM_API_TOKEN_PARAMETER")
		if err != nil {
			return err
		}
		c.APIToken = v
	}
	return nil
}

// parameter reads one SecureString (or String) parameter, decrypted.
func parameter(ctx context.Context, ps Parameters, name, variable string) (string, error) {
	out, err := ps.GetParameter(ctx, &ssm.GetParameterInput{Name: aws.String(name), WithDecryption: aws.Bool(true)})
	var nf *types.ParameterNotFound
	switch {
	case errors.As(err, &nf):
		return "", fmt.Errorf("SSM parameter %s (%s) not found: create it with aws ssm put-parameter --name %s --type SecureString --value ..., or point %s at another",
			name, variable, name, variable)
	case err != nil:
		return "", fmt.Errorf("read SSM parameter %s (%s): %w", name, variable, err)
	case out.Parameter == nil || aws.ToString(out.Parameter.Value) == "":
		return "", fmt.Errorf("SSM parameter %s (%s) is empty", name, variable)
	}
	return aws.ToString(out.Parameter.Value), nil
}
