package telemetry

import (
	"fmt"
	"strconv"
	"strings"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
)

// SAMPLING_RULES chooses the sampling ratio of new traces by rules, first match wins:
//
//	SAMPLING_RULES="rpc.method=payment.*:1; service=order.service:0.5; *:0.1"
//
// A rule is KEY=PATTERN:RATIO or *:RATIO. KEY is "service" (this process's service name), "span"
// (the span name), or any attribute set when the span starts, such as rpc.method or
// messaging.destination.name; PATTERN may hold "*" for any run of characters. Rules decide only for spans that
// start a trace: every other span follows its parent, so one decision holds across RPC and
// NATS. When SAMPLING_RULES is set it replaces OTEL_TRACES_SAMPLER.

type rule struct {
	key, pattern string // key "" matches everything
	sampler      sdktrace.Sampler
	text         string
}

// ruleSampler samples root spans by the first rule that matches them.
type ruleSampler struct {
	rules []rule
	desc  string
}

// NewRuleSampler parses rules for the process serving service, and returns the sampler that
// applies them to roots and follows the parent everywhere else.
func NewRuleSampler(rules, service string) (sdktrace.Sampler, error) {
	rs := &ruleSampler{}
	for _, text := range strings.Split(rules, ";") {
		if text = strings.TrimSpace(text); text == "" {
			continue
		}
		cond, ratioText, ok := cutLast(text, ":")
		ratio, err := strconv.ParseFloat(ratioText, 64)
		if !ok || err != nil || ratio < 0 || ratio > 1 {
			return nil, fmt.Errorf("telemetry: SAMPLING_RULES: %q: want KEY=PATTERN:RATIO with a ratio from 0 to 1", text)
		}
		r := rule{sampler: sdktrace.TraceIDRatioBased(ratio), text: text}
		if cond != "*" {
			key, pattern, ok := strings.Cut(cond, "=")
			if !ok || key == "" {
				return nil, fmt.Errorf("telemetry: SAMPLING_RULES: %q: want KEY=PATTERN:RATIO", text)
			}
			r.key, r.pattern = key, pattern
		}
		if r.key == "service" {
			// Known now: the rule either applies to every span of this process or to none.
			if !glob(r.pattern, service) {
				continue
			}
			r.key = ""
		}
		rs.rules = append(rs.rules, r)
	}
	if len(rs.rules) == 0 {
		return nil, fmt.Errorf("telemetry: SAMPLING_RULES=%q has no rule for %s", rules, service)
	}
	texts := make([]string, len(rs.rules))
	for i, r := range rs.rules {
		texts[i] = r.text
	}
	rs.desc = "RuleSampler{" + strings.Join(texts, "; ") + "}"
	return sdktrace.ParentBased(rs), nil
}

func (rs *ruleSampler) ShouldSample(p sdktrace.SamplingParameters) sdktrace.SamplingResult {
	for _, r := range rs.rules {
		if r.matches(p) {
			return r.sampler.ShouldSample(p)
		}
	}
	return sdktrace.SamplingResult{Decision: sdktrace.Drop}
}

func (rs *ruleSampler) Description() string { return rs.desc }

func (r rule) matches(p sdktrace.SamplingParameters) bool {
	switch r.key {
	case "":
		return true
	case "span":
		return glob(r.pattern, p.Name)
	}
	for _, kv := range p.Attributes {
		if string(kv.Key) == r.key {
			return glob(r.pattern, kv.Value.String())
		}
	}
	return false
}

// glob reports whether s matches pattern, where "*" stands for any run of characters,
// "/" and "." included.
func glob(pattern, s string) bool {
	parts := strings.Split(pattern, "*")
	if len(parts) == 1 {
		return pattern == s
	}
	if !strings.HasPrefix(s, parts[0]) {
		return false
	}
	s = s[len(parts[0]):]
	for _, part := range parts[1 : len(parts)-1] {
		i := strings.Index(s, part)
		if i < 0 {
			return false
		}
		s = s[i+len(part):]
	}
	return strings.HasSuffix(s, parts[len(parts)-1])
}

func cutLast(s, sep string) (before, after string, found bool) {
	if i := strings.LastIndex(s, sep); i >= 0 {
		return s[:i], s[i+len(sep):], true
	}
	return s, "", false
}
