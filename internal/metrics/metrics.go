// Package metrics names every Prometheus metric ccsd exports, in one place.
// Packages receive a *Metrics and update its fields; nothing here is global.
package metrics

import (
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Metrics holds every collector. Counters are safe for concurrent use.
type Metrics struct {
	Registry *prometheus.Registry

	// CCS (app-server XMPP) endpoint.
	CCSConnections  prometheus.Gauge
	CCSAccepted     prometheus.Counter
	CCSClosed       *prometheus.CounterVec // by reason
	CCSStanzasIn    prometheus.Counter
	CCSStanzasOut   prometheus.Counter
	CCSAcks         prometheus.Counter
	CCSNacks        *prometheus.CounterVec // by code
	CCSAuthFailures prometheus.Counter
	CCSUpstreamOut  prometheus.Counter
	CCSUpstreamAcks prometheus.Counter
	CCSBadAcks      prometheus.Counter

	// Queue.
	QueueStored   prometheus.Counter
	QueueDepth    *prometheus.GaugeVec // by stream
	QueueDeleted  prometheus.Counter
	QueueExpired  prometheus.Counter
	QueuePublishE prometheus.Counter

	// Device (MCS) endpoint.
	MCSConnections prometheus.Gauge
	MCSLogins      prometheus.Counter
	MCSLoginFails  *prometheus.CounterVec // by reason
	MCSDelivered   prometheus.Counter
	MCSAcked       prometheus.Counter
	MCSUpstreamIn  prometheus.Counter
	MCSClosed      *prometheus.CounterVec // by reason

	// Device HTTPS routes (check-in, registration).
	DeviceHTTP *prometheus.CounterVec // by route and result
}

// New creates the collectors on a fresh registry, with Go runtime and
// process collectors included.
func New() *Metrics {
	r := prometheus.NewRegistry()
	r.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	f := factory{r}
	m := &Metrics{
		Registry:        r,
		CCSConnections:  f.gauge("ccsd_ccs_connections", "Open app-server CCS connections."),
		CCSAccepted:     f.counter("ccsd_ccs_connections_accepted_total", "Accepted app-server CCS connections."),
		CCSClosed:       f.counterVec("ccsd_ccs_connections_closed_total", "Closed app-server CCS connections, by reason.", "reason"),
		CCSStanzasIn:    f.counter("ccsd_ccs_stanzas_in_total", "Stanzas read from app servers."),
		CCSStanzasOut:   f.counter("ccsd_ccs_stanzas_out_total", "Stanzas written to app servers."),
		CCSAcks:         f.counter("ccsd_ccs_acks_total", "Downstream messages ACKed."),
		CCSNacks:        f.counterVec("ccsd_ccs_nacks_total", "Downstream messages NACKed, by error code.", "code"),
		CCSAuthFailures: f.counter("ccsd_ccs_auth_failures_total", "Failed SASL authentications."),
		CCSUpstreamOut:  f.counter("ccsd_ccs_upstream_sent_total", "Upstream messages and receipts sent to app servers."),
		CCSUpstreamAcks: f.counter("ccsd_ccs_upstream_acked_total", "Upstream messages and receipts ACKed by app servers."),
		CCSBadAcks:      f.counter("ccsd_ccs_bad_acks_total", "ACKs from app servers answered with BAD_ACK."),
		QueueStored:     f.counter("ccsd_queue_stored_total", "Messages stored in JetStream."),
		QueueDepth:      f.gaugeVec("ccsd_queue_depth", "Messages held in each JetStream stream.", "stream"),
		QueueDeleted:    f.counter("ccsd_queue_deleted_total", "Stored messages retired after delivery."),
		QueueExpired:    f.counter("ccsd_queue_expired_total", "Stored messages dropped at delivery because their time_to_live had passed."),
		QueuePublishE:   f.counter("ccsd_queue_publish_errors_total", "JetStream publishes that failed."),
		MCSConnections:  f.gauge("ccsd_mcs_connections", "Open device MCS connections."),
		MCSLogins:       f.counter("ccsd_mcs_logins_total", "Successful device logins."),
		MCSLoginFails:   f.counterVec("ccsd_mcs_login_failures_total", "Failed device logins, by reason.", "reason"),
		MCSDelivered:    f.counter("ccsd_mcs_delivered_total", "Downstream messages written to devices."),
		MCSAcked:        f.counter("ccsd_mcs_acked_total", "Downstream messages acknowledged by devices."),
		MCSUpstreamIn:   f.counter("ccsd_mcs_upstream_in_total", "Upstream messages received from devices."),
		MCSClosed:       f.counterVec("ccsd_mcs_connections_closed_total", "Closed device connections, by reason.", "reason"),
		DeviceHTTP:      f.counterVec("ccsd_device_http_requests_total", "Device check-in and registration requests, by route and result (status, or register3's token/deleted/Error code).", "route", "result"),
	}
	return m
}

// Handler serves the registry in the Prometheus text format.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.Registry, promhttp.HandlerOpts{})
}

type factory struct{ r *prometheus.Registry }

func (f factory) counter(name, help string) prometheus.Counter {
	c := prometheus.NewCounter(prometheus.CounterOpts{Name: name, Help: help})
	f.r.MustRegister(c)
	return c
}

func (f factory) gauge(name, help string) prometheus.Gauge {
	g := prometheus.NewGauge(prometheus.GaugeOpts{Name: name, Help: help})
	f.r.MustRegister(g)
	return g
}

func (f factory) counterVec(name, help string, labels ...string) *prometheus.CounterVec {
	c := prometheus.NewCounterVec(prometheus.CounterOpts{Name: name, Help: help}, labels)
	f.r.MustRegister(c)
	return c
}

func (f factory) gaugeVec(name, help string, labels ...string) *prometheus.GaugeVec {
	g := prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: name, Help: help}, labels)
	f.r.MustRegister(g)
	return g
}
