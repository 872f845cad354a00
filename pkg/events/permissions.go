package events

import (
	"fmt"
	"maps"
	"slices"
	"strings"
)

// Role is one of akvsync's NATS identities. Each service connects as its
// own user, whose permissions name exactly the subjects that service
// needs (see [Role.Permissions]); only [RoleAdmin] may create or change
// streams, consumers and buckets, and it is used only by the init step
// (worker --init-topology).
type Role string

// The NATS identities.
const (
	// RoleAdmin creates and updates the topology (streams, durable
	// consumers, buckets): the init step. It holds the whole JetStream API.
	RoleAdmin Role = "admin"
	// RoleAPI is the API process: it accepts jobs, registers vaults and
	// connections, keeps refresh tokens and asks the workers' inventories.
	RoleAPI Role = "api"
	// RoleWorker is a worker process: it plans jobs, syncs vaults, tracks
	// jobs and answers inventory queries.
	RoleWorker Role = "worker"
	// RoleMonitor is read-only: stream and consumer state (dashboards,
	// alerts, the nats CLI), the events stream, and the query service's
	// $SRV discovery.
	RoleMonitor Role = "monitor"
)

// Roles lists every identity, in the order deploy/nats/accounts.conf
// declares them.
func Roles() []Role { return []Role{RoleAdmin, RoleAPI, RoleWorker, RoleMonitor} }

// User is the NATS user name of the role.
func (r Role) User() string { return "akvsync-" + string(r) }

// PasswordEnv is the environment variable of nats-server that holds the
// role's password (deploy/nats/accounts.conf reads it from there).
func (r Role) PasswordEnv() string {
	return "AKVSYNC_NATS_" + strings.ToUpper(string(r)) + "_PASSWORD"
}

// InboxPrefix is the prefix of the role's reply subjects (nats.go's
// CustomInboxPrefix). Each role may subscribe to its own inboxes only, so
// no service can read the replies another one gets (a key-value get of a
// refresh token, say).
func (r Role) InboxPrefix() string { return "_INBOX_akvsync_" + string(r) }

// SubjectPermissions is an allow list and a deny list of subjects.
type SubjectPermissions struct {
	Allow []string
	Deny  []string
}

// Permissions are one NATS user's permissions.
type Permissions struct {
	Publish   SubjectPermissions
	Subscribe SubjectPermissions
	// AllowResponses lets the user answer a request it received (one
	// reply to its reply subject), whatever that subject is.
	AllowResponses bool
}

// access is what a role touches. Every list names akvsync's own streams,
// buckets and subjects; Permissions turns it into NATS subjects.
type access struct {
	// kvWrite: buckets read and written (put, create, update, delete).
	kvWrite []string
	// kvRead: buckets read only (get, watch, list keys).
	kvRead []string
	// kvPurgeSubjects: buckets whose stream the role purges by subject
	// (a job's records at once).
	kvPurgeSubjects []string
	// durables: the durable consumer the role pulls from, by stream.
	durables map[string]string
	// readers: streams the role reads with ordered (ephemeral)
	// consumers; never a stream's durable consumer.
	readers []string
	// msgGet: streams whose messages the role reads by sequence or
	// subject.
	msgGet []string
	// msgDelete: streams whose messages the role deletes one by one.
	msgDelete []string
	// purgeSubjects: streams the role purges by subject.
	purgeSubjects []string
	// info: other streams the role only looks up.
	info []string
	// publish, publishDeny and subscribe: core subjects.
	publish, publishDeny, subscribe []string
	// inboxesOf: roles whose inboxes the role sends to outside a plain
	// reply (a key export's chunks and their acknowledgements).
	inboxesOf []Role
	// allowResponses: see Permissions.AllowResponses.
	allowResponses bool
	// monitor: the read-only JetStream listing and info API.
	monitor bool
}

// kvStream is the stream behind a key-value bucket.
func kvStream(bucket string) string { return "KV_" + bucket }

// durablesOf lists the durable consumers of a stream.
func durablesOf(stream string) []string {
	var out []string
	for s, cc := range (Topology{}).Consumers() {
		if s == stream {
			out = append(out, cc.Durable)
		}
	}
	return out
}

func (r Role) access() access {
	switch r {
	case RoleAPI:
		return access{
			kvWrite:         []string{BucketJobs, BucketVaults, BucketConnections, BucketLocks, BucketRefreshTokens, BucketSubscriptions, BucketTickets, BucketRevokedTokens, BucketJobConfigs},
			kvPurgeSubjects: []string{BucketJobs},
			// The scheduler: every API process takes schedule fires from
			// the shared durable, and reads a config's schedule message.
			durables: map[string]string{StreamSchedules: ConsumerScheduleFirer},
			msgGet:   []string{StreamSchedules},
			// Server-sent events.
			readers: []string{StreamEvents},
			// Removing a vault purges its key records.
			purgeSubjects: []string{StreamKeys},
			info:          []string{StreamRequests, StreamRefresh},
			publish: []string{
				subjSyncRequested + ".*",            // accept a job
				subjEventJob + ".*.*",               // job-level events (abort_requested)
				subjKey + ".*." + VaultRemovedToken, // a removed vault's marker
				QueryGroup + ".>",                   // ask the workers' inventories
				subjScheduleArm + ".*",              // arm or disarm a job config's schedule
				subjEventSchedule + ".*.*",          // schedule fired and skipped events
				subjRefreshKey + ".*.*",             // Event Grid: read a key again
			},
			inboxesOf: []Role{RoleWorker}, // acknowledge key export chunks
		}
	case RoleWorker:
		return access{
			kvWrite: []string{BucketJobs, BucketLocks, BucketBudget},
			// Vault records and sealed connections: never changed here.
			kvRead:          []string{BucketVaults, BucketConnections},
			kvPurgeSubjects: []string{BucketJobs},
			durables: map[string]string{
				StreamRequests: ConsumerPlanner,
				StreamTasks:    ConsumerVaultSyncer,
				StreamEvents:   ConsumerJobTracker,
				StreamRefresh:  ConsumerKeyRefresher,
			},
			// The inventory projector follows the keys and the job records.
			readers: []string{StreamKeys, kvStream(BucketJobs)},
			// The janitor reads an exhausted task (and deletes it) and a
			// job's request; the projector a vault's last key record.
			msgGet:    []string{StreamRequests, StreamTasks, StreamKeys},
			msgDelete: []string{StreamTasks},
			publish: []string{
				subjTaskVault + ".*.*", // the planner fans a job out
				"akvsync.event.>",      // job and vault events
				subjKey + ".*.*",       // the inventory
			},
			// Only the API removes vaults.
			publishDeny: []string{subjKey + ".*." + VaultRemovedToken},
			subscribe: []string{
				QueryGroup + ".>", "$SRV.>", // the query service
				JobEventFilter(KindJobAbortRequested), // cancel running syncs
				VaultRemovedFilter(),                  // stop syncing a removed vault
				MaxDeliveriesAdvisorySubject,          // the janitor
			},
			inboxesOf:      []Role{RoleAPI}, // key export chunks
			allowResponses: true,            // query replies ($SRV, any requester)
		}
	case RoleMonitor:
		return access{
			// Live events by plain subscription: no consumer creation,
			// so no push consumer whose deliver subject could point into
			// another stream.
			subscribe: []string{SubjectAllEvents},
			publish:   []string{"$SRV.>"}, // discover the query service
			monitor:   true,
		}
	}
	return access{}
}

// Permissions returns the role's NATS permissions. Every subject of a
// service role is named: no service holds $JS.API.>, and none may create,
// update or delete a stream, a bucket or a durable consumer, nor read
// another service's inbox.
func (r Role) Permissions() Permissions {
	if r == RoleAdmin {
		return Permissions{
			Publish:   SubjectPermissions{Allow: []string{"$JS.API.>"}},
			Subscribe: SubjectPermissions{Allow: []string{r.InboxPrefix() + ".>"}},
		}
	}
	a := r.access()
	var pub, deny []string
	add := func(s ...string) { pub = append(pub, s...) }
	add("$JS.API.INFO")
	for _, s := range r.Streams() {
		add("$JS.API.STREAM.INFO." + s)
	}
	kvRead := func(b string) {
		st := kvStream(b)
		add("$JS.API.DIRECT.GET."+st, "$JS.API.DIRECT.GET."+st+".>",
			// Watchers and key listers: ordered consumers filtered on
			// the bucket's keys; the client deletes them when done.
			"$JS.API.CONSUMER.CREATE."+st+".*.$KV."+b+".>",
			"$JS.API.CONSUMER.INFO."+st+".*", "$JS.API.CONSUMER.DELETE."+st+".*",
			// Flow control of those push consumers (v1 and v2 forms).
			"$JS.FC."+st+".>", "$JS.FC.*.*."+st+".>")
	}
	for _, b := range a.kvWrite {
		kvRead(b)
		add("$KV." + b + ".>")
	}
	for _, b := range a.kvRead {
		kvRead(b)
	}
	for _, b := range a.kvPurgeSubjects {
		add("$JS.API.STREAM.PURGE." + kvStream(b))
	}
	for _, s := range slices.Sorted(maps.Keys(a.durables)) {
		c := a.durables[s]
		add("$JS.API.CONSUMER.INFO."+s+"."+c, "$JS.API.CONSUMER.MSG.NEXT."+s+"."+c,
			"$JS.ACK."+s+"."+c+".>", "$JS.ACK.*.*."+s+"."+c+".>")
	}
	for _, s := range a.readers {
		// Named creates only: with or without a filter subject. An
		// ordered consumer deletes itself when it resets or stops.
		add("$JS.API.CONSUMER.CREATE."+s+".*", "$JS.API.CONSUMER.CREATE."+s+".*.>",
			"$JS.API.CONSUMER.MSG.NEXT."+s+".*", "$JS.API.CONSUMER.INFO."+s+".*",
			"$JS.API.CONSUMER.DELETE."+s+".*")
		// Never the stream's durable consumers: the create, pull and
		// delete forms above end in the consumer name, so denying it
		// names them all.
		for _, d := range durablesOf(s) {
			deny = append(deny, "$JS.API.CONSUMER.DELETE."+s+"."+d)
			if a.durables[s] == d {
				continue
			}
			deny = append(deny, "$JS.API.CONSUMER.CREATE."+s+"."+d, "$JS.API.CONSUMER.CREATE."+s+"."+d+".>",
				"$JS.API.CONSUMER.MSG.NEXT."+s+"."+d)
		}
	}
	for _, s := range a.msgGet {
		add("$JS.API.STREAM.MSG.GET." + s)
	}
	for _, s := range a.msgDelete {
		add("$JS.API.STREAM.MSG.DELETE." + s)
	}
	for _, s := range a.purgeSubjects {
		add("$JS.API.STREAM.PURGE." + s)
	}
	if a.monitor {
		add("$JS.API.STREAM.NAMES", "$JS.API.STREAM.LIST")
		for _, s := range r.Streams() {
			add("$JS.API.CONSUMER.NAMES."+s, "$JS.API.CONSUMER.LIST."+s, "$JS.API.CONSUMER.INFO."+s+".*")
		}
	}
	add(a.publish...)
	for _, o := range a.inboxesOf {
		add(o.InboxPrefix() + ".>")
	}
	deny = append(deny, a.publishDeny...)
	sub := append([]string{r.InboxPrefix() + ".>"}, a.subscribe...)
	return Permissions{
		Publish:        SubjectPermissions{Allow: dedupe(pub), Deny: dedupe(deny)},
		Subscribe:      SubjectPermissions{Allow: dedupe(sub)},
		AllowResponses: a.allowResponses,
	}
}

// Streams lists the streams (buckets as KV_<bucket>) the role uses: the
// topology a service waits for at start. The monitor sees every stream.
func (r Role) Streams() []string {
	if r == RoleAdmin || r == RoleMonitor {
		var out []string
		for _, s := range (Topology{}).Streams() {
			out = append(out, s.Name)
		}
		for _, b := range (Topology{}).Buckets() {
			out = append(out, kvStream(b.Bucket))
		}
		return out
	}
	a := r.access()
	var out []string
	for _, b := range slices.Concat(a.kvWrite, a.kvRead) {
		out = append(out, kvStream(b))
	}
	out = append(out, slices.Sorted(maps.Keys(a.durables))...)
	out = append(out, a.readers...)
	out = append(out, a.msgGet...)
	out = append(out, a.msgDelete...)
	out = append(out, a.purgeSubjects...)
	out = append(out, a.info...)
	return dedupe(out)
}

// dedupe drops repeated subjects, keeping the first of each.
func dedupe(in []string) []string {
	var out []string
	seen := map[string]bool{}
	for _, s := range in {
		if !seen[s] {
			seen[s] = true
			out = append(out, s)
		}
	}
	return out
}

// NATSAuthorization renders every role's user and permissions as a
// nats-server configuration file (deploy/nats/accounts.conf is this
// text; a test keeps them equal). Passwords come from nats-server's
// environment ([Role.PasswordEnv]), never from the file.
func NATSAuthorization() string {
	var b strings.Builder
	b.WriteString(`# akvsync's NATS users: one per service, each allowed exactly the subjects
# it needs. GENERATED from pkg/events/permissions.go: do not edit; run
#   AKVSYNC_UPDATE_DEPLOY=1 go test ./pkg/events -run TestShippedNATSUsers
# after changing it. docs/security.md explains each user.
#
# Passwords come from the environment of nats-server, never from this file:
`)
	for _, r := range Roles() {
		fmt.Fprintf(&b, "#   %s (user %s)\n", r.PasswordEnv(), r.User())
	}
	b.WriteString("# Generate each with e.g. `openssl rand -hex 24`.\n#\n")
	b.WriteString("# Clients must use their user's inbox prefix (the services do):\n")
	for _, r := range Roles() {
		fmt.Fprintf(&b, "#   %s: %s\n", r.User(), r.InboxPrefix())
	}
	b.WriteString("authorization {\n  users = [\n")
	for _, r := range Roles() {
		p := r.Permissions()
		fmt.Fprintf(&b, "    {\n      user: %s\n      password: $%s\n      permissions: {\n", r.User(), r.PasswordEnv())
		writeList := func(name string, subjects []string) {
			if len(subjects) == 0 {
				return
			}
			fmt.Fprintf(&b, "          %s: [\n", name)
			for _, s := range subjects {
				fmt.Fprintf(&b, "            %q\n", s)
			}
			b.WriteString("          ]\n")
		}
		b.WriteString("        publish: {\n")
		writeList("allow", p.Publish.Allow)
		writeList("deny", p.Publish.Deny)
		b.WriteString("        }\n        subscribe: {\n")
		writeList("allow", p.Subscribe.Allow)
		writeList("deny", p.Subscribe.Deny)
		b.WriteString("        }\n")
		if p.AllowResponses {
			b.WriteString("        allow_responses: true\n")
		}
		b.WriteString("      }\n    }\n")
	}
	b.WriteString("  ]\n}\n")
	return b.String()
}
