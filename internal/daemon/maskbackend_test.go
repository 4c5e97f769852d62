package daemon

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/tikvops/operator/internal/diagnose"
)

type echoBackend struct{}

func (echoBackend) Name() string { return "echo" }
func (echoBackend) Diagnose(context.Context, *diagnose.Context) (*diagnose.Diagnosis, error) {
	return nil, fmt.Errorf("%w: 401 {\"error\":\"invalid api key sk-live-123456\"}", diagnose.ErrUnavailable)
}

func TestMaskBackendErrors(t *testing.T) {
	b := maskErrors(echoBackend{}, []string{"sk-live-123456"})
	_, err := b.Diagnose(context.Background(), &diagnose.Context{})
	if err == nil || strings.Contains(err.Error(), "sk-live-123456") || !strings.Contains(err.Error(), "invalid api key ****") {
		t.Fatalf("err = %v", err)
	}
	if !errors.Is(err, diagnose.ErrUnavailable) {
		t.Errorf("the chain is lost: %v", err)
	}
	if b.Name() != "echo" {
		t.Errorf("Name = %q", b.Name())
	}
}
