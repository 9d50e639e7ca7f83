// Command judge gives the verdicts GitOps tools give modelcycle's objects, computed by those
// tools' own code, not by our reading of it:
//
//   - kstatus: the status library Flux's kustomize-controller and helm-controller wait on
//     (github.com/fluxcd/cli-utils, Flux's fork), and upstream sigs.k8s.io/cli-utils (kpt,
//     Config Sync, kubectl-based tooling). Both are reported; the e2e suite expects them to agree.
//   - Argo CD health: the Lua checks of docs/argocd run in gopher-lua, the engine Argo CD embeds,
//     set up as Argo CD sets it up for a check configured in argocd-cm (see argo.go).
//
// It reads a JSON list (`{"items": [...]}`, as `kubectl get -o json` prints) on stdin and writes
// one verdict per object as a JSON array on stdout.
//
//	judge --health-dir docs/argocd < objects.json
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"

	fluxstatus "github.com/fluxcd/cli-utils/pkg/kstatus/status"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	kstatus "sigs.k8s.io/cli-utils/pkg/kstatus/status"
)

// Verdict is what the tools say about one object.
type Verdict struct {
	Kind      string `json:"kind"`
	Namespace string `json:"namespace"`
	Name      string `json:"name"`
	// Flux's kstatus (github.com/fluxcd/cli-utils).
	Kstatus        string `json:"kstatus"`
	KstatusMessage string `json:"kstatusMessage"`
	// Upstream kstatus (sigs.k8s.io/cli-utils).
	Upstream        string `json:"kstatusUpstream"`
	UpstreamMessage string `json:"kstatusUpstreamMessage"`
	// Argo CD's health, empty when no check is configured for the kind.
	Health        string `json:"health"`
	HealthMessage string `json:"healthMessage"`
}

func main() {
	healthDir := flag.String("health-dir", "docs/argocd", "directory of the Argo CD health checks (<kind>-health.lua)")
	flag.Parse()
	if err := run(*healthDir, os.Stdin, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "judge:", err)
		os.Exit(1)
	}
}

func run(healthDir string, in io.Reader, out io.Writer) error {
	var list struct {
		Items []map[string]interface{} `json:"items"`
	}
	decoder := json.NewDecoder(in)
	// Numbers as json.Number, as the API machinery decodes them (integers stay integers).
	decoder.UseNumber()
	if err := decoder.Decode(&list); err != nil {
		return fmt.Errorf("reading the list on stdin: %w", err)
	}
	checks, err := loadHealthChecks(healthDir)
	if err != nil {
		return err
	}
	verdicts := make([]Verdict, 0, len(list.Items))
	for _, item := range list.Items {
		obj := &unstructured.Unstructured{Object: normalise(item).(map[string]interface{})}
		v := Verdict{Kind: obj.GetKind(), Namespace: obj.GetNamespace(), Name: obj.GetName()}
		flux, err := fluxstatus.Compute(obj)
		if err != nil {
			return fmt.Errorf("kstatus (Flux) on %s %s: %w", v.Kind, v.Name, err)
		}
		v.Kstatus, v.KstatusMessage = string(flux.Status), flux.Message
		upstream, err := kstatus.Compute(obj)
		if err != nil {
			return fmt.Errorf("kstatus on %s %s: %w", v.Kind, v.Name, err)
		}
		v.Upstream, v.UpstreamMessage = string(upstream.Status), upstream.Message
		health, err := checks.health(obj)
		if err != nil {
			return fmt.Errorf("Argo CD health of %s %s: %w", v.Kind, v.Name, err)
		}
		if health != nil {
			v.Health, v.HealthMessage = health.Status, health.Message
		}
		verdicts = append(verdicts, v)
	}
	encoder := json.NewEncoder(out)
	encoder.SetIndent("", "  ")
	return encoder.Encode(verdicts)
}

// normalise turns json.Number into int64 or float64, as the API machinery's unstructured
// decoder does, so generation and observedGeneration compare as integers.
func normalise(value interface{}) interface{} {
	switch v := value.(type) {
	case map[string]interface{}:
		for key, item := range v {
			v[key] = normalise(item)
		}
		return v
	case []interface{}:
		for i, item := range v {
			v[i] = normalise(item)
		}
		return v
	case json.Number:
		if i, err := v.Int64(); err == nil {
			return i
		}
		f, _ := v.Float64()
		return f
	default:
		return v
	}
}
