// Command knative-validate runs Knative's own admission rules over manifests, offline.
//
// Every YAML document whose apiVersion/kind is a Knative Serving or Eventing type listed in `kinds` is
// strict-decoded (an unknown field is an error), given the namespace the API server would give it,
// defaulted with SetDefaults and validated with Validate(apis.WithinCreate(ctx)) — what the webhooks run
// on `kubectl apply` — under the same config-defaults, config-features and config-autoscaler (serving)
// and config-features (eventing) ConfigMaps the cluster script installs (--config).
//
// Output: one JSON line per document {"file", "index", "apiVersion", "kind", "name", "checked", "errors",
// "warnings"}; other kinds are listed with "checked": false. Exit status 1 when any document has an
// error, 2 on a usage or I/O problem.
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"

	corev1 "k8s.io/api/core/v1"
	k8syaml "k8s.io/apimachinery/pkg/util/yaml"
	kubefake "k8s.io/client-go/kubernetes/fake"
	"knative.dev/eventing/pkg/apis/feature"
	"knative.dev/eventing/pkg/apis/sinks"
	sinksv1alpha1 "knative.dev/eventing/pkg/apis/sinks/v1alpha1"
	sourcesv1 "knative.dev/eventing/pkg/apis/sources/v1"
	"knative.dev/pkg/apis"
	servingconfig "knative.dev/serving/pkg/apis/config"
	servingv1 "knative.dev/serving/pkg/apis/serving/v1"
	asconfig "knative.dev/serving/pkg/autoscaler/config"
	"sigs.k8s.io/yaml"
)

// resource is what the webhooks need from a Knative type.
type resource interface {
	apis.Defaultable
	apis.Validatable
	GetNamespace() string
	SetNamespace(string)
	GetName() string
}

// kinds maps "apiVersion/kind" to a constructor of the Go type the webhook decodes.
var kinds = map[string]func() resource{
	"serving.knative.dev/v1/Service":         func() resource { return &servingv1.Service{} },
	"sinks.knative.dev/v1alpha1/JobSink":     func() resource { return &sinksv1alpha1.JobSink{} },
	"sources.knative.dev/v1/SinkBinding":     func() resource { return &sourcesv1.SinkBinding{} },
	"sources.knative.dev/v1/ContainerSource": func() resource { return &sourcesv1.ContainerSource{} },
	"sources.knative.dev/v1/PingSource":      func() resource { return &sourcesv1.PingSource{} },
}

type report struct {
	File       string   `json:"file"`
	Index      int      `json:"index"`
	APIVersion string   `json:"apiVersion"`
	Kind       string   `json:"kind"`
	Name       string   `json:"name"`
	Checked    bool     `json:"checked"`
	Errors     []string `json:"errors"`
	Warnings   []string `json:"warnings"`
}

type header struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
	Metadata   struct {
		Name string `json:"name"`
	} `json:"metadata"`
}

func main() {
	configPath := flag.String("config", "", "YAML file with the knative-serving and knative-eventing ConfigMaps")
	namespace := flag.String("namespace", "default", "namespace of documents that name none")
	flag.Usage = func() {
		fmt.Fprintln(os.Stderr, "usage: knative-validate [--config FILE] [--namespace NS] MANIFEST.yaml...")
		flag.PrintDefaults()
	}
	flag.Parse()
	if flag.NArg() == 0 {
		flag.Usage()
		os.Exit(2)
	}
	ctx, err := clusterContext(*configPath)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	failed := false
	out := json.NewEncoder(os.Stdout)
	for _, path := range flag.Args() {
		docs, err := documents(path)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(2)
		}
		for i, doc := range docs {
			r := check(ctx, doc, *namespace)
			r.File, r.Index = path, i
			failed = failed || len(r.Errors) > 0
			if err := out.Encode(r); err != nil {
				fmt.Fprintln(os.Stderr, err)
				os.Exit(2)
			}
		}
	}
	if failed {
		os.Exit(1)
	}
}

// check decodes, defaults and validates one document the way the admission webhooks do.
func check(ctx context.Context, doc []byte, namespace string) report {
	var h header
	if err := yaml.Unmarshal(doc, &h); err != nil {
		return report{Checked: true, Errors: []string{err.Error()}, Warnings: []string{}}
	}
	r := report{APIVersion: h.APIVersion, Kind: h.Kind, Name: h.Metadata.Name, Errors: []string{}, Warnings: []string{}}
	newResource, ok := kinds[h.APIVersion+"/"+h.Kind]
	if !ok {
		return r
	}
	r.Checked = true
	obj := newResource()
	if err := yaml.UnmarshalStrict(doc, obj); err != nil {
		r.Errors = append(r.Errors, err.Error())
		return r
	}
	if obj.GetNamespace() == "" {
		obj.SetNamespace(namespace) // the API server sets it before the webhooks run
	}
	obj.SetDefaults(ctx)
	if fe := obj.Validate(apis.WithinCreate(ctx)); fe != nil {
		r.Errors = messages(fe.Filter(apis.ErrorLevel))
		r.Warnings = messages(fe.Filter(apis.WarningLevel))
	}
	return r
}

func messages(fe *apis.FieldError) []string {
	if fe == nil {
		return []string{}
	}
	var out []string
	for _, e := range fe.WrappedErrors() {
		out = append(out, e.Error())
	}
	if len(out) == 0 {
		out = []string{fe.Error()}
	}
	return out
}

// clusterContext carries the cluster's Knative configuration as the webhooks see it.
func clusterContext(path string) (context.Context, error) {
	maps := map[string]map[string]string{}
	if path != "" {
		docs, err := documents(path)
		if err != nil {
			return nil, err
		}
		for _, doc := range docs {
			var cm corev1.ConfigMap
			if err := yaml.UnmarshalStrict(doc, &cm); err != nil {
				return nil, fmt.Errorf("%s: %w", path, err)
			}
			maps[cm.Namespace+"/"+cm.Name] = cm.Data
		}
	}
	defaults, err := servingconfig.NewDefaultsConfigFromMap(maps["knative-serving/config-defaults"])
	if err != nil {
		return nil, fmt.Errorf("config-defaults: %w", err)
	}
	features, err := servingconfig.NewFeaturesConfigFromMap(maps["knative-serving/config-features"])
	if err != nil {
		return nil, fmt.Errorf("config-features (serving): %w", err)
	}
	autoscaler, err := asconfig.NewConfigFromMap(maps["knative-serving/config-autoscaler"])
	if err != nil {
		return nil, fmt.Errorf("config-autoscaler: %w", err)
	}
	flags, err := feature.NewFlagsConfigFromMap(maps["knative-eventing/config-features"])
	if err != nil {
		return nil, fmt.Errorf("config-features (eventing): %w", err)
	}
	ctx := servingconfig.ToContext(context.Background(),
		&servingconfig.Config{Defaults: defaults, Features: features, Autoscaler: autoscaler})
	ctx = feature.ToContext(ctx, flags)
	// JobSink's Validate dry-runs the Job through the API server; offline a fake client accepts it,
	// so the Job template's own rules are checked by the caller (kubernetes-validate + project rules).
	return sinks.WithConfig(ctx, &sinks.Config{KubeClient: kubefake.NewSimpleClientset()}), nil
}

// documents splits a multi-document YAML file, dropping empty documents.
func documents(path string) ([][]byte, error) {
	file, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer file.Close()
	reader := k8syaml.NewYAMLReader(bufio.NewReader(file))
	var docs [][]byte
	for {
		doc, err := reader.Read()
		if errors.Is(err, io.EOF) {
			return docs, nil
		}
		if err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		var probe map[string]any
		if err := yaml.Unmarshal(doc, &probe); err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		if len(probe) > 0 {
			docs = append(docs, doc)
		}
	}
}
