package safetext

import "testing"

func TestMask(t *testing.T) {
	for _, tt := range []struct{ in, want string }{
		{`401 {"error":"invalid key sk-ant-abc123"}`, `401 {"error":"invalid key ****"}`},
		{"sk-ant-abc123 and sk-ant-abc123 again", "**** and **** again"},
		{"http://root:hunter22@pd:2379", "http://root:****@pd:2379"},
		{"nothing secret", "nothing secret"},
		{"short key abc", "short key abc"}, // "abc" is below the minimum length
	} {
		if got := Mask(tt.in, "sk-ant-abc123", "hunter22", "abc", ""); got != tt.want {
			t.Errorf("Mask(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}
