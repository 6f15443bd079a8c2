package plugin

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/spf13/cobra"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/util/duration"
	"k8s.io/cli-runtime/pkg/printers"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	iamv1beta1 "github.com/exokey/exokey/api/v1beta1"
	"github.com/exokey/exokey/internal/controller"
)

type statusOptions struct {
	*Options
	allNamespaces bool
	output        string
	now           func() time.Time
}

// accessKeyStatus is one line of `status`.
type accessKeyStatus struct {
	Namespace string `json:"namespace"`
	Name      string `json:"name"`
	Ready     string `json:"ready"`
	// Reason of the Ready condition.
	Reason       string       `json:"reason,omitempty"`
	KeyID        string       `json:"keyID,omitempty"`
	KeyCreatedAt *metav1.Time `json:"keyCreatedAt,omitempty"`
	// NextRotationAt is when the key is due for replacement (a session
	// credential: renewal).
	NextRotationAt *metav1.Time `json:"nextRotationAt,omitempty"`
	// ExpiresAt is when a session credential (spec.ttl) expires.
	ExpiresAt *metav1.Time    `json:"expiresAt,omitempty"`
	Retiring  []retiringState `json:"retiring,omitempty"`
	// Message is the Ready condition's message when it is not Ready.
	Message string `json:"message,omitempty"`
	// LastEvent is the AccessKey's last event when it is not Ready.
	LastEvent *lastEvent `json:"lastEvent,omitempty"`
}

type lastEvent struct {
	Type    string      `json:"type"`
	Reason  string      `json:"reason"`
	Message string      `json:"message"`
	At      metav1.Time `json:"at"`
}

type retiringState struct {
	KeyID    string      `json:"keyID"`
	RevokeAt metav1.Time `json:"revokeAt"`
}

func newStatusCommand(o *Options) *cobra.Command {
	opts := &statusOptions{Options: o, now: time.Now}
	cmd := &cobra.Command{
		Use:   "status [NAME...] [-n NAMESPACE | -A]",
		Short: "Show AccessKeys at a glance: ready, key, age, next rotation or expiry, retiring keys, why one is refused",
		Long: `Status prints one line per AccessKey: whether it is Ready, its key and the key's
age, when it is next rotated (a session credential: renewed, and when it
expires), the retiring keys and when they are revoked, and
for an AccessKey that is not Ready, why (its condition and its last event).`,
		Example: `  kubectl exokey status -A
  kubectl exokey status backup-writer -n backups -o yaml`,
		RunE: func(cmd *cobra.Command, args []string) error { return opts.run(cmd.Context(), args) },
	}
	cmd.Flags().BoolVarP(&opts.allNamespaces, "all-namespaces", "A", false, "AccessKeys of every namespace")
	addOutputFlag(cmd, &opts.output)
	return cmd
}

func (o *statusOptions) run(ctx context.Context, names []string) error {
	if err := outputFormat(o.output); err != nil {
		return err
	}
	if o.allNamespaces && len(names) > 0 {
		return fmt.Errorf("name AccessKeys or ask for --all-namespaces, not both")
	}
	c, err := o.client()
	if err != nil {
		return err
	}
	var opts []client.ListOption
	if !o.allNamespaces {
		namespace, err := o.namespace()
		if err != nil {
			return err
		}
		opts = append(opts, client.InNamespace(namespace))
	}
	list := &iamv1beta1.AccessKeyList{}
	if err := c.List(ctx, list, opts...); err != nil {
		return err
	}
	var rows []accessKeyStatus
	for i := range list.Items {
		ak := &list.Items[i]
		if len(names) > 0 && !slices.Contains(names, ak.Name) {
			continue
		}
		rows = append(rows, statusOf(ak))
	}
	for _, name := range names {
		if !slices.ContainsFunc(rows, func(row accessKeyStatus) bool { return row.Name == name }) {
			return fmt.Errorf("accesskey %q not found", name)
		}
	}
	if err := o.addLastEvents(ctx, c, rows, opts); err != nil {
		return err
	}
	sort.Slice(rows, func(i, j int) bool {
		if rows[i].Namespace != rows[j].Namespace {
			return rows[i].Namespace < rows[j].Namespace
		}
		return rows[i].Name < rows[j].Name
	})
	if o.output != "" {
		if rows == nil {
			rows = []accessKeyStatus{}
		}
		return printData(o.Out, o.output, rows)
	}
	if len(rows) == 0 {
		fmt.Fprintln(o.ErrOut, "No AccessKeys found.")
		return nil
	}
	return o.printTable(rows)
}

func statusOf(ak *iamv1beta1.AccessKey) accessKeyStatus {
	row := accessKeyStatus{Namespace: ak.Namespace, Name: ak.Name, Ready: "Unknown", KeyID: ak.Status.KeyID,
		KeyCreatedAt: ak.Status.CreatedAt, NextRotationAt: ak.Status.NextRotationAt, ExpiresAt: ak.Status.ExpiresAt}
	if ready := meta.FindStatusCondition(ak.Status.Conditions, controller.ConditionReady); ready != nil {
		row.Ready, row.Reason = string(ready.Status), ready.Reason
		if ready.Status != metav1.ConditionTrue {
			row.Message = ready.Message
		}
	}
	for _, retiring := range ak.Status.Retiring {
		row.Retiring = append(row.Retiring, retiringState{KeyID: retiring.KeyID, RevokeAt: ptr.Deref(retiring.RevokeAt, metav1.Time{})})
	}
	return row
}

// addLastEvents adds the last event of each AccessKey that is not Ready.
func (o *statusOptions) addLastEvents(ctx context.Context, c client.Client, rows []accessKeyStatus, opts []client.ListOption) error {
	notReady := map[string]int{}
	for i, row := range rows {
		if row.Ready != string(metav1.ConditionTrue) {
			notReady[row.Namespace+"/"+row.Name] = i
		}
	}
	if len(notReady) == 0 {
		return nil
	}
	events := &corev1.EventList{}
	selector := client.MatchingFieldsSelector{Selector: fields.OneTermEqualSelector("involvedObject.kind", "AccessKey")}
	if err := c.List(ctx, events, append(opts, selector)...); err != nil {
		return fmt.Errorf("list the AccessKeys' events: %w", err)
	}
	last := map[int]corev1.Event{}
	for _, event := range events.Items {
		i, ok := notReady[event.InvolvedObject.Namespace+"/"+event.InvolvedObject.Name]
		if !ok {
			continue
		}
		if seen, ok := last[i]; !ok || eventTime(event).After(eventTime(seen)) {
			last[i] = event
		}
	}
	for i, event := range last {
		rows[i].LastEvent = &lastEvent{Type: event.Type, Reason: event.Reason, Message: event.Message, At: metav1.NewTime(eventTime(event))}
	}
	return nil
}

// eventTime is when an event last happened, whichever API wrote it.
func eventTime(event corev1.Event) time.Time {
	latest := event.EventTime.Time
	if event.LastTimestamp.After(latest) {
		latest = event.LastTimestamp.Time
	}
	if event.Series != nil && event.Series.LastObservedTime.After(latest) {
		latest = event.Series.LastObservedTime.Time
	}
	return latest
}

func (o *statusOptions) printTable(rows []accessKeyStatus) error {
	w := printers.GetNewTabWriter(o.Out)
	fmt.Fprintln(w, "NAMESPACE\tNAME\tREADY\tKEY\tKEY AGE\tNEXT ROTATION\tRETIRING\tMESSAGE")
	now := o.now()
	for _, row := range rows {
		ready := row.Ready
		if row.Ready != string(metav1.ConditionTrue) && row.Reason != "" {
			ready += " (" + row.Reason + ")"
		}
		age := "-"
		if row.KeyCreatedAt != nil {
			age = duration.HumanDuration(now.Sub(row.KeyCreatedAt.Time))
		}
		var retiring []string
		for _, r := range row.Retiring {
			retiring = append(retiring, r.KeyID+" "+relative(now, r.RevokeAt.Time, "revoked"))
		}
		next := "-"
		if row.NextRotationAt != nil {
			next = relative(now, row.NextRotationAt.Time, "")
		}
		if row.ExpiresAt != nil {
			next += " (expires " + relative(now, row.ExpiresAt.Time, "") + ")"
		}
		message := row.Message
		if event := row.LastEvent; event != nil {
			message += fmt.Sprintf(" (last event %s %s %s ago", event.Type, event.Reason, duration.HumanDuration(now.Sub(event.At.Time)))
			if event.Message != row.Message {
				message += ": " + event.Message
			}
			message = strings.TrimSpace(message) + ")"
		}
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", row.Namespace, row.Name, ready, orDash(row.KeyID), age, next,
			orDash(strings.Join(retiring, ", ")), orDash(message))
	}
	return w.Flush()
}

// relative says "in 5m", or "due" once t has passed; verb prefixes it.
func relative(now, t time.Time, verb string) string {
	prefix := ""
	if verb != "" {
		prefix = verb + " "
	}
	if !t.After(now) {
		return prefix + "due"
	}
	return prefix + "in " + duration.HumanDuration(t.Sub(now))
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
