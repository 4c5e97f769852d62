package config_test

import (
	"slices"
	"strings"
	"testing"

	"github.com/tikvops/operator/internal/config"
)

func TestTLSFilesNeedHTTPS(t *testing.T) {
	c := config.Default()
	c.PD.Endpoints = []string{"https://pd-0:2379", "http://pd-1:2379"}
	c.PD.CAPath = "/etc/tidb/tls/ca.crt"
	err := c.Validate()
	if err == nil || !strings.Contains(err.Error(), `PD endpoint "http://pd-1:2379" is http://`) ||
		!strings.Contains(err.Error(), "https://pd-1:2379") {
		t.Fatalf("Validate = %v", err)
	}
	c.PD.Endpoints = []string{"https://pd-0:2379"}
	if err := c.Validate(); err != nil {
		t.Errorf("https with a CA: %v", err)
	}
}

func TestCheckCredentials(t *testing.T) {
	c := config.Default()
	if err := c.CheckCredentials(); err != nil {
		t.Errorf("rules: %v", err)
	}
	c.Diagnosis.Backend = "anthropic"
	if err := c.CheckCredentials(); err == nil || !strings.HasPrefix(err.Error(), "configuration error:") {
		t.Errorf("anthropic without key: %v", err)
	}
	c.Diagnosis.Anthropic.APIKey = "k"
	if err := c.CheckCredentials(); err != nil {
		t.Errorf("anthropic with key: %v", err)
	}
	c.Diagnosis.Backend = "openai"
	if err := c.CheckCredentials(); err == nil {
		t.Error("openai without key or base-url accepted")
	}
	c.Diagnosis.OpenAI.BaseURL = "http://127.0.0.1:8000/v1"
	if err := c.CheckCredentials(); err != nil {
		t.Errorf("openai on a local server: %v", err)
	}
}

func TestSecretsAndRedactURLs(t *testing.T) {
	c := config.Default()
	c.PD.Endpoints = []string{"http://root:pdpass99@pd:2379"}
	c.Diagnosis.Anthropic.APIKey = "sk-ant-1"
	c.Server.Token = "tok-123456"
	got := c.Secrets()
	for _, want := range []string{"pdpass99", "sk-ant-1", "tok-123456"} {
		if !slices.Contains(got, want) {
			t.Errorf("Secrets() = %q lacks %q", got, want)
		}
	}
	if r := config.RedactURLs(c.PD.Endpoints); r[0] != "http://root:****@pd:2379" {
		t.Errorf("RedactURLs = %q", r)
	}
}
