package main

import (
	"go/ast"
	"go/parser"
	"go/token"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// storeDir is internal/store/dynamodb, the store the function runs on. This
// module does not import it (it uses labtrail as a user would), so these
// tests read its source to keep the table and the policy in step with it.
const storeDir = "../../internal/store/dynamodb"

// functionDir is internal/serverless, which reads the function's
// configuration from its environment.
const functionDir = "../../internal/serverless"

// storeSource parses the store's non-test files.
func storeSource(t *testing.T) (*token.FileSet, []*ast.File) {
	t.Helper()
	return parseDir(t, storeDir)
}

// parseDir parses the non-test Go files of dir.
func parseDir(t *testing.T, dir string) (*token.FileSet, []*ast.File) {
	t.Helper()
	names, err := filepath.Glob(filepath.Join(dir, "*.go"))
	if err != nil || len(names) == 0 {
		t.Fatalf("no Go files in %s (%v): the Pulumi program is checked against that package", dir, err)
	}
	fset := token.NewFileSet()
	var files []*ast.File
	for _, n := range names {
		if strings.HasSuffix(n, "_test.go") {
			continue
		}
		src, err := os.ReadFile(n)
		if err != nil {
			t.Fatal(err)
		}
		f, err := parser.ParseFile(fset, n, src, 0)
		if err != nil {
			t.Fatal(err)
		}
		files = append(files, f)
	}
	return fset, files
}

// stringConsts resolves the package's string constants, those defined
// through other constants too.
func stringConsts(files []*ast.File) map[string]string {
	exprs := map[string]ast.Expr{}
	for _, f := range files {
		for _, d := range f.Decls {
			g, ok := d.(*ast.GenDecl)
			if !ok || g.Tok != token.CONST {
				continue
			}
			for _, sp := range g.Specs {
				vs := sp.(*ast.ValueSpec)
				for i, n := range vs.Names {
					if i < len(vs.Values) {
						exprs[n.Name] = vs.Values[i]
					}
				}
			}
		}
	}
	out := map[string]string{}
	var eval func(e ast.Expr, depth int) (string, bool)
	eval = func(e ast.Expr, depth int) (string, bool) {
		switch e := e.(type) {
		case *ast.BasicLit:
			if e.Kind == token.STRING {
				s, err := strconv.Unquote(e.Value)
				return s, err == nil
			}
		case *ast.Ident:
			if x, ok := exprs[e.Name]; ok && depth < 10 {
				return eval(x, depth+1)
			}
		}
		return "", false
	}
	for n, e := range exprs {
		if v, ok := eval(e, 0); ok {
			out[n] = v
		}
	}
	return out
}

// The store's Create makes the table; the program must make the same one.
// This reads Create's table from the store's source: the key schema
// (AttributeName of each KeySchemaElement with KeyTypeHash / KeyTypeRange
// in the table's CreateTableInput) and every index built with its gsi(name,
// hash, range) helper, and compares them with tableIndexes.
func TestTableMatchesStore(t *testing.T) {
	_, files := storeSource(t)
	consts := stringConsts(files)
	str := func(e ast.Expr) string {
		switch e := e.(type) {
		case *ast.Ident:
			if v, ok := consts[e.Name]; ok {
				return v
			}
		case *ast.BasicLit:
			v, _ := strconv.Unquote(e.Value)
			return v
		case *ast.CallExpr: // aws.String(x)
			if len(e.Args) == 1 {
				if v, ok := e.Args[0].(*ast.Ident); ok {
					return consts[v.Name]
				}
			}
		}
		return ""
	}
	var indexes []tableIndex
	var hash, rng, billing string
	projections := map[string]bool{}
	for _, f := range files {
		ast.Inspect(f, func(n ast.Node) bool {
			switch n := n.(type) {
			case *ast.CallExpr:
				if id, ok := n.Fun.(*ast.Ident); ok && id.Name == "gsi" && len(n.Args) == 3 {
					indexes = append(indexes, tableIndex{str(n.Args[0]), str(n.Args[1]), str(n.Args[2])})
				}
			case *ast.KeyValueExpr:
				key, _ := n.Key.(*ast.Ident)
				if key == nil {
					return true
				}
				switch key.Name {
				case "BillingMode", "ProjectionType":
					if sel, ok := n.Value.(*ast.SelectorExpr); ok {
						if key.Name == "BillingMode" {
							billing = sel.Sel.Name
						} else {
							projections[sel.Sel.Name] = true
						}
					}
				case "KeySchema":
					// The table's own key schema is the one made of constants
					// (the gsi helper's uses its parameters).
					lit, ok := n.Value.(*ast.CompositeLit)
					if !ok {
						return true
					}
					for _, el := range lit.Elts {
						kv, ok := el.(*ast.CompositeLit)
						if !ok {
							continue
						}
						var name, typ string
						for _, f := range kv.Elts {
							f := f.(*ast.KeyValueExpr)
							switch f.Key.(*ast.Ident).Name {
							case "AttributeName":
								name = str(f.Value)
							case "KeyType":
								if sel, ok := f.Value.(*ast.SelectorExpr); ok {
									typ = sel.Sel.Name
								}
							}
						}
						if name == "" {
							continue
						}
						if typ == "KeyTypeHash" {
							hash = name
						} else if typ == "KeyTypeRange" {
							rng = name
						}
					}
				}
			}
			return true
		})
	}
	if len(indexes) == 0 || hash == "" {
		t.Fatalf("found no table in %s (no KeySchema of constants, no gsi(name, hash, range) calls): if Create builds its table differently now, teach this test to read it", storeDir)
	}
	equal(t, "table keys", []string{hash, rng}, []string{tableHashKey, tableRangeKey})
	equal(t, "indexes", indexes, tableIndexes)
	equal(t, "billing mode", billing, "BillingModePayPerRequest")
	equal(t, "projections", projections, map[string]bool{"ProjectionTypeAll": true})
	equal(t, "TTL attribute", consts["TimeToLiveAttribute"], ttlAttribute)
}

// setupOperations make or describe the table and its TTL: Pulumi does that,
// so the function's role is not granted them.
var setupOperations = []string{"CreateTable", "UpdateTable", "DeleteTable", "DescribeTimeToLive", "UpdateTimeToLive", "ListTables"}

// dynamoDBOperations are the DynamoDB API's operations, as the SDK's client
// names its methods.
var dynamoDBOperations = []string{
	"BatchExecuteStatement", "BatchGetItem", "BatchWriteItem", "ConditionCheckItem", "CreateTable", "DeleteItem",
	"DeleteTable", "DescribeTable", "DescribeTimeToLive", "ExecuteStatement", "ExecuteTransaction", "GetItem",
	"ListTables", "PutItem", "Query", "Scan", "TransactGetItems", "TransactWriteItems", "UpdateItem",
	"UpdateTable", "UpdateTimeToLive",
}

// Every DynamoDB operation the store calls outside table setup is granted,
// and nothing more: a method call X.Op(...) or a paginator NewOpPaginator
// for any operation Op of the API, in any non-test file of the store.
func TestActionsMatchStore(t *testing.T) {
	fset, files := storeSource(t)
	used := operationsCalled(fset, files, func(op string) bool {
		return slices.Contains(dynamoDBOperations, op) && !slices.Contains(setupOperations, op)
	})
	var want []string
	for op := range used {
		want = append(want, "dynamodb:"+op)
	}
	slices.Sort(want)
	got := slices.Sorted(slices.Values(dynamoDBActions))
	if !slices.Equal(got, want) {
		t.Errorf("the role grants %v; the store calls %v (at %v)", got, want, used)
	}
}

// operationsCalled finds, in files, the calls of an API operation (a
// method call X.Op(...) or a paginator NewOpPaginator) for which wanted
// is true, with where each is called.
func operationsCalled(fset *token.FileSet, files []*ast.File, wanted func(op string) bool) map[string][]string {
	used := map[string][]string{}
	for _, f := range files {
		ast.Inspect(f, func(n ast.Node) bool {
			call, ok := n.(*ast.CallExpr)
			if !ok {
				return true
			}
			sel, ok := call.Fun.(*ast.SelectorExpr)
			if !ok {
				return true
			}
			op := sel.Sel.Name
			if p, ok := strings.CutPrefix(op, "New"); ok && strings.HasSuffix(p, "Paginator") {
				op = strings.TrimSuffix(p, "Paginator")
			}
			if wanted(op) {
				used[op] = append(used[op], fset.Position(call.Pos()).String())
			}
			return true
		})
	}
	return used
}

// Every variable the program puts into the function's environment is one
// the function reads: a string constant of that name in internal/serverless
// (its ConfigFromEnv), so a renamed variable fails here, not in AWS.
func TestEnvironmentReadByFunction(t *testing.T) {
	_, files := parseDir(t, functionDir)
	names := map[string]bool{}
	for _, f := range files {
		ast.Inspect(f, func(n ast.Node) bool {
			if lit, ok := n.(*ast.BasicLit); ok && lit.Kind == token.STRING {
				if v, err := strconv.Unquote(lit.Value); err == nil && envNameExpr.MatchString(v) {
					names[v] = true
				}
			}
			return true
		})
	}
	s := settings{Repos: "a/b", Groups: "g", Env: map[string]string{}}
	set := slices.Sorted(maps.Keys(s.environment()))
	set = append(set, "LABTRAIL_DYNAMODB_TABLE")
	for _, k := range set {
		if !names[k] {
			t.Errorf("the program sets %s, which %s never names", k, functionDir)
		}
	}
	for _, k := range programEnv {
		if !names[k] {
			t.Errorf("programEnv names %s, which %s never names", k, functionDir)
		}
	}
}

// ssmParameterOperations are SSM Parameter Store's operations, as the
// SDK's client names its methods.
var ssmParameterOperations = []string{
	"DeleteParameter", "DeleteParameters", "DescribeParameters", "GetParameter", "GetParameterHistory",
	"GetParameters", "GetParametersByPath", "LabelParameterVersion", "PutParameter", "UnlabelParameterVersion",
}

// Every Parameter Store operation the function calls is granted, and
// nothing more: a method call X.Op(...) or a paginator NewOpPaginator for
// any operation Op, in any non-test file of internal/serverless.
func TestParameterActionsMatchFunction(t *testing.T) {
	fset, files := parseDir(t, functionDir)
	used := operationsCalled(fset, files, func(op string) bool { return slices.Contains(ssmParameterOperations, op) })
	if len(used) == 0 {
		t.Fatalf("found no SSM call in %s: if the function reads its parameters differently now, teach this test to find it", functionDir)
	}
	var want []string
	for op := range used {
		want = append(want, "ssm:"+op)
	}
	slices.Sort(want)
	got := slices.Sorted(slices.Values(parameterActions))
	if !slices.Equal(got, want) {
		t.Errorf("the role grants %v; the function calls %v (at %v)", got, want, used)
	}
}
