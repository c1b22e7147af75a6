// Command labtrail-aws is the Pulumi program that runs labtrail on AWS:
// a DynamoDB table (on-demand, TTL, point-in-time recovery), the Lambda
// function built by `make lambda` with a least-privilege role, an
// EventBridge schedule that runs one sync pass per tick, and a Function URL
// for GitLab's webhooks and the read API. `pulumi up` creates it all,
// `pulumi destroy` removes it. It is its own Go module so Pulumi's
// dependencies stay out of labtrail's; it uses labtrail only as a user
// would, through the bootstrap binary and its environment variables.
package main

import (
	"github.com/pulumi/pulumi-aws/sdk/v6/go/aws/cloudwatch"
	"github.com/pulumi/pulumi-aws/sdk/v6/go/aws/dynamodb"
	"github.com/pulumi/pulumi-aws/sdk/v6/go/aws/iam"
	"github.com/pulumi/pulumi-aws/sdk/v6/go/aws/kms"
	"github.com/pulumi/pulumi-aws/sdk/v6/go/aws/lambda"
	"github.com/pulumi/pulumi-aws/sdk/v6/go/aws/ssm"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"
)

func main() {
	pulumi.Run(func(ctx *pulumi.Context) error {
		st, err := program(ctx)
		if err != nil {
			return err
		}
		ctx.Export("tableName", st.TableName)
		ctx.Export("functionName", st.FunctionName)
		ctx.Export("functionUrl", st.FunctionURL)
		ctx.Export("webhookUrl", st.WebhookURL)
		ctx.Export("apiUrl", st.APIURL)
		return nil
	})
}

// program reads the stack's settings and declares its resources.
func program(ctx *pulumi.Context) (*stack, error) {
	s, err := loadSettings(ctx)
	if err != nil {
		return nil, err
	}
	return newStack(ctx, s)
}

// stack holds the outputs a user needs after `pulumi up`.
type stack struct {
	TableName    pulumi.StringOutput
	FunctionName pulumi.StringOutput
	FunctionURL  pulumi.StringOutput // ends in a slash
	WebhookURL   pulumi.StringOutput // what GitLab's webhook settings take
	APIURL       pulumi.StringOutput // base of the read API
}

// newStack declares every resource.
func newStack(ctx *pulumi.Context, s settings) (*stack, error) {
	tags := pulumi.StringMap{"app": pulumi.String("labtrail"), "stack": pulumi.String(ctx.Stack())}

	// Look the parameters and their key up first: a parameter not yet put
	// into SSM fails the preview here, naming it, rather than the function's
	// first cold start.
	var paramArns []string
	for _, name := range s.parameters() {
		p, err := ssm.LookupParameter(ctx, &ssm.LookupParameterArgs{Name: name, WithDecryption: pulumi.BoolRef(false)})
		if err != nil {
			return nil, err
		}
		paramArns = append(paramArns, p.Arn)
	}
	key, err := kms.LookupKey(ctx, &kms.LookupKeyArgs{KeyId: s.KMSKey})
	if err != nil {
		return nil, err
	}
	if _, err := arnRegion(key.Arn); err != nil {
		return nil, err
	}

	code, err := bootstrapZip(s.Bootstrap)
	if err != nil {
		return nil, err
	}

	table, err := dynamodb.NewTable(ctx, "table", tableArgs(s, tags))
	if err != nil {
		return nil, err
	}

	logs, err := cloudwatch.NewLogGroup(ctx, "logs", &cloudwatch.LogGroupArgs{
		Name:            pulumi.String("/aws/lambda/" + s.Name),
		RetentionInDays: pulumi.Int(s.LogRetentionDays),
		Tags:            tags,
	})
	if err != nil {
		return nil, err
	}

	role, err := iam.NewRole(ctx, "role", &iam.RoleArgs{
		Description:      pulumi.String("labtrail's Lambda function " + s.Name),
		AssumeRolePolicy: pulumi.String(assumeRolePolicy()),
		Tags:             tags,
	})
	if err != nil {
		return nil, err
	}
	policy := pulumi.All(table.Arn, logs.Arn).ApplyT(func(v []any) (string, error) {
		return functionPolicy(v[0].(string), paramArns, key.Arn, v[1].(string))
	}).(pulumi.StringOutput)
	rolePolicy, err := iam.NewRolePolicy(ctx, "policy", &iam.RolePolicyArgs{Role: role.Name, Policy: policy})
	if err != nil {
		return nil, err
	}

	env := pulumi.StringMap{"LABTRAIL_DYNAMODB_TABLE": table.Name}
	for k, v := range s.environment() {
		env[k] = pulumi.String(v)
	}
	fn, err := lambda.NewFunction(ctx, "function", &lambda.FunctionArgs{
		Name:          pulumi.String(s.Name),
		Description:   pulumi.String("labtrail: scheduled GitLab sync, webhooks and read API"),
		Runtime:       pulumi.String("provided.al2023"),
		Architectures: pulumi.StringArray{pulumi.String("arm64")},
		Handler:       pulumi.String("bootstrap"),
		Code:          pulumi.NewFileArchive(code),
		Role:          role.Arn,
		MemorySize:    pulumi.Int(s.Memory),
		Timeout:       pulumi.Int(int(s.Timeout.Seconds())),
		Environment:   &lambda.FunctionEnvironmentArgs{Variables: env},
		LoggingConfig: &lambda.FunctionLoggingConfigArgs{LogFormat: pulumi.String("Text"), LogGroup: logs.Name},
		Tags:          tags,
	}, pulumi.DependsOn([]pulumi.Resource{rolePolicy, logs}))
	if err != nil {
		return nil, err
	}

	rule, err := cloudwatch.NewEventRule(ctx, "schedule", &cloudwatch.EventRuleArgs{
		Description:        pulumi.String("one labtrail sync pass per tick"),
		ScheduleExpression: pulumi.String(s.Schedule),
		Tags:               tags,
	})
	if err != nil {
		return nil, err
	}
	if _, err := cloudwatch.NewEventTarget(ctx, "schedule-target", &cloudwatch.EventTargetArgs{
		Rule: rule.Name,
		Arn:  fn.Arn,
	}); err != nil {
		return nil, err
	}
	// EventBridge invokes the function asynchronously, and Lambda would
	// retry a failed pass twice, overlapping the next ticks; the next tick is
	// the retry, resuming from the cursors.
	if _, err := lambda.NewFunctionEventInvokeConfig(ctx, "schedule-retries", &lambda.FunctionEventInvokeConfigArgs{
		FunctionName:         fn.Name,
		MaximumRetryAttempts: pulumi.Int(0),
	}); err != nil {
		return nil, err
	}
	if _, err := lambda.NewPermission(ctx, "schedule-invoke", &lambda.PermissionArgs{
		Action:    pulumi.String("lambda:InvokeFunction"),
		Function:  fn.Name,
		Principal: pulumi.String("events.amazonaws.com"),
		SourceArn: rule.Arn,
	}); err != nil {
		return nil, err
	}

	// No IAM auth on the URL: GitLab cannot sign AWS requests. The function
	// checks the webhook secret on deliveries and the bearer token on reads.
	url, err := lambda.NewFunctionUrl(ctx, "url", &lambda.FunctionUrlArgs{
		FunctionName:      fn.Name,
		AuthorizationType: pulumi.String("NONE"),
	})
	if err != nil {
		return nil, err
	}
	if _, err := lambda.NewPermission(ctx, "url-invoke", &lambda.PermissionArgs{
		Action:              pulumi.String("lambda:InvokeFunctionUrl"),
		Function:            fn.Name,
		Principal:           pulumi.String("*"),
		FunctionUrlAuthType: pulumi.String("NONE"),
	}); err != nil {
		return nil, err
	}

	return &stack{
		TableName:    table.Name,
		FunctionName: fn.Name,
		FunctionURL:  url.FunctionUrl,
		WebhookURL:   pulumi.Sprintf("%sapi/v1/webhooks/gitlab", url.FunctionUrl),
		APIURL:       pulumi.Sprintf("%sapi/v1/", url.FunctionUrl),
	}, nil
}
