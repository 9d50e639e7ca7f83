package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

func model(status map[string]interface{}) *unstructured.Unstructured {
	obj := map[string]interface{}{
		"apiVersion": "modelcycle.io/v1alpha1",
		"kind":       "Model",
		"metadata":   map[string]interface{}{"name": "churn", "generation": int64(1)},
	}
	if status != nil {
		obj["status"] = status
	}
	return &unstructured.Unstructured{Object: obj}
}

// The Lua state is Argo CD's: no string library, os only through require, a bad status Unknown.
func TestTheLuaStateIsArgoCDs(t *testing.T) {
	obj := model(nil)
	if _, err := runHealthCheck(obj, `return {status = string.upper("healthy")}`); err == nil {
		t.Error("the string library is open; Argo CD does not open it for a check from argocd-cm")
	}
	if _, err := runHealthCheck(obj, `return {status = "Healthy", message = tostring(os.time())}`); err == nil {
		t.Error("os is a global; in Argo CD it is reached only through require")
	}
	h, err := runHealthCheck(obj, `local os = require("os"); return {status = "Healthy", message = tostring(os.time() > 0)}`)
	if err != nil || h.Status != "Healthy" || h.Message != "true" {
		t.Errorf("os.time through require: %v %v", h, err)
	}
	h, err = runHealthCheck(obj, `return {status = "Fine"}`)
	if err != nil || h.Status != "Unknown" {
		t.Errorf("an invalid status: %v %v", h, err)
	}
	h, err = runHealthCheck(obj, `return {status = "Progressing", message = obj.metadata.name .. " " .. obj.metadata.generation}`)
	if err != nil || h.Message != "churn 1" {
		t.Errorf("obj: %v %v", h, err)
	}
}

// Why the CRDs default status to {observedGeneration: 0}: kstatus calls an object without status
// Current, and one whose observed generation lags InProgress.
func TestAnObjectWithoutStatusIsCurrentForKstatus(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "model-health.lua"), []byte(`return {status = "Healthy"}`), 0o600); err != nil {
		t.Fatal(err)
	}
	list, _ := json.Marshal(map[string]interface{}{"items": []interface{}{
		model(nil).Object,
		model(map[string]interface{}{"observedGeneration": 0}).Object,
	}})
	var out bytes.Buffer
	if err := run(dir, strings.NewReader(string(list)), &out); err != nil {
		t.Fatal(err)
	}
	var verdicts []Verdict
	if err := json.Unmarshal(out.Bytes(), &verdicts); err != nil {
		t.Fatal(err)
	}
	if verdicts[0].Kstatus != "Current" || verdicts[0].Upstream != "Current" {
		t.Errorf("without status: %+v", verdicts[0])
	}
	if verdicts[1].Kstatus != "InProgress" || verdicts[1].Upstream != "InProgress" {
		t.Errorf("with observedGeneration 0: %+v", verdicts[1])
	}
	if verdicts[1].Health != "Healthy" {
		t.Errorf("the health check from the folder was not run: %+v", verdicts[1])
	}
}
