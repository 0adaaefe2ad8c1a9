package telemetry

import (
	"testing"
	"time"
)

func TestResolve(t *testing.T) {
	yes, no := true, false
	half := 0.5
	tests := map[string]struct {
		env     map[string]string
		s       Settings
		want    Config
		wantErr bool
	}{
		"off/nothing-set": {want: Config{Protocol: "http/protobuf"}},
		"on/env-endpoint": {env: map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318"},
			want: Config{Enabled: true, Protocol: "http/protobuf"}},
		"on/env-traces-endpoint-grpc": {env: map[string]string{"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://c:4317", "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"},
			want: Config{Enabled: true, Protocol: "grpc"}},
		"off/sdk-disabled-wins": {env: map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c", "OTEL_SDK_DISABLED": "TRUE"},
			s: Settings{Enabled: &yes}, want: Config{Protocol: "http/protobuf"}},
		"off/policy-disables": {env: map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c"},
			s: Settings{Enabled: &no}, want: Config{Protocol: "http/protobuf"}},
		"on/policy-endpoint-and-protocol-win": {env: map[string]string{"OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"},
			s:    Settings{Endpoint: "http://p:4318", Protocol: "http/protobuf", ServiceName: "svc"},
			want: Config{Enabled: true, Protocol: "http/protobuf", Endpoint: "http://p:4318", ServiceName: "svc"}},
		"on/policy-sampler-env-arg": {env: map[string]string{"OTEL_TRACES_SAMPLER_ARG": "0.25"},
			s: Settings{Enabled: &yes, Sampler: "traceidratio"}, want: Config{Enabled: true, Protocol: "http/protobuf", Sampler: "traceidratio", SamplerArg: 0.25}},
		"on/policy-sampler-arg": {s: Settings{Enabled: &yes, Sampler: "parentbased_traceidratio", SamplerArg: &half},
			want: Config{Enabled: true, Protocol: "http/protobuf", Sampler: "parentbased_traceidratio", SamplerArg: 0.5}},
		"error/bad-protocol":    {env: map[string]string{"OTEL_EXPORTER_OTLP_PROTOCOL": "http/json"}, wantErr: true},
		"error/bad-sampler-arg": {env: map[string]string{"OTEL_TRACES_SAMPLER_ARG": "2"}, s: Settings{Sampler: "traceidratio"}, wantErr: true},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			got, err := Resolve(func(k string) string { return tc.env[k] }, tc.s)
			if (err != nil) != tc.wantErr {
				t.Fatalf("err = %v, want error %v", err, tc.wantErr)
			}
			if tc.wantErr {
				return
			}
			if got.ShutdownTimeout != 5*time.Second || got.Why == "" {
				t.Errorf("shutdown %v, why %q", got.ShutdownTimeout, got.Why)
			}
			got.ShutdownTimeout, got.Why = 0, ""
			if got.Enabled != tc.want.Enabled || got.Protocol != tc.want.Protocol || got.Endpoint != tc.want.Endpoint ||
				got.ServiceName != tc.want.ServiceName || got.Sampler != tc.want.Sampler || got.SamplerArg != tc.want.SamplerArg {
				t.Errorf("got %+v\nwant %+v", got, tc.want)
			}
		})
	}
}
