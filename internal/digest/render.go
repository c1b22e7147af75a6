package digest

import (
	"encoding/json"
	"fmt"
	"strings"
	"unicode/utf8"
)

// Slack's limits on an incoming webhook's Block Kit message
// (api.slack.com/reference/block-kit/blocks): a message holds at most 50
// blocks; a section's text at most 3,000 characters, its fields at most
// 10 of 2,000 each; a header's text 150; a context at most 10 elements.
const (
	SlackMaxBlocks      = 50
	SlackMaxText        = 3000
	SlackMaxFields      = 10
	SlackMaxFieldText   = 2000
	SlackMaxHeaderText  = 150
	SlackMaxContextElem = 10
)

// titleLimit bounds one listed item's title, so that a list of TopN stays
// readable and far from a text's limit.
const titleLimit = 120

// Text is a Block Kit text object.
type Text struct {
	Type string `json:"type"` // plain_text or mrkdwn
	Text string `json:"text"`
}

// Block is a Block Kit block of the kinds a digest uses: header, section,
// context, divider.
type Block struct {
	Type     string `json:"type"`
	Text     *Text  `json:"text,omitempty"`
	Fields   []Text `json:"fields,omitempty"`
	Elements []Text `json:"elements,omitempty"`
}

// SlackMessage is the body of a Slack incoming webhook: Text is the
// notification's fallback, Blocks the message.
type SlackMessage struct {
	Text   string  `json:"text"`
	Blocks []Block `json:"blocks"`
}

// escape makes s safe in mrkdwn: Slack reads &, < and > as markup.
func escape(s string) string {
	return strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;").Replace(s)
}

// slackMaxURL bounds a link's URL: a link to a selection of hundreds of
// projects would fill a text's 3,000 characters alone, so such a link is
// left out and its text kept.
const slackMaxURL = 1000

// escapeCut escapes s for mrkdwn within n characters, cutting s (never
// an entity) and marking the cut with "…".
func escapeCut(s string, n int) string {
	e := escape(s)
	if utf8.RuneCountInString(e) <= n {
		return e
	}
	var b strings.Builder
	used := 0
	for _, r := range s {
		x := escape(string(r))
		if used+utf8.RuneCountInString(x) > n-1 {
			break
		}
		b.WriteString(x)
		used += utf8.RuneCountInString(x)
	}
	return b.String() + "…"
}

// mlink is a mrkdwn link, or the bare text without a URL (or with one
// too long to fit).
func mlink(url, text string) string {
	if url == "" || len(url) > slackMaxURL {
		return escape(text)
	}
	return "<" + url + "|" + escape(text) + ">"
}

func mrkdwn(s string) Text { return Text{Type: "mrkdwn", Text: s} }

func section(s string) Block { t := mrkdwn(s); return Block{Type: "section", Text: &t} }

// bounded joins lines under a heading within limit characters; the lines
// that do not fit are counted in a last line instead of being cut in the
// middle (a cut link would break the message).
func bounded(limit int, heading string, lines []string) string {
	s := heading
	for i, l := range lines {
		more := ""
		if rest := len(lines) - i - 1; rest > 0 {
			more = fmt.Sprintf("\n…and %d more", rest)
		}
		if len([]rune(s))+1+len([]rune(l))+len([]rune(more)) > limit {
			return s + fmt.Sprintf("\n…and %d more", len(lines)-i)
		}
		s += "\n" + l
	}
	return s
}

// itemLines writes items as mrkdwn lines: the title linked to GitLab, the
// details, and a link to labtrail's page.
func itemLines(items []Item) []string {
	out := make([]string, 0, len(items))
	for _, it := range items {
		l := "• " + mlink(it.WebURL, cut(it.Title, titleLimit))
		if d := itemDetail(it); d != "" {
			l += " — " + escape(cut(d, titleLimit))
		}
		if it.URL != "" {
			l += " (" + mlink(it.URL, "labtrail") + ")"
		}
		out = append(out, l)
	}
	return out
}

func field(name string, f Figure) Text {
	return mrkdwn(cut("*"+escape(name)+"*\n"+escape(line(f)), SlackMaxFieldText))
}

// Slack renders the digest as a Block Kit message within Slack's limits.
func (d *Digest) Slack() SlackMessage {
	var b []Block
	b = append(b, Block{Type: "header", Text: &Text{Type: "plain_text", Text: cut(d.Title, SlackMaxHeaderText)}})
	ctx := []Text{mrkdwn(escapeCut(d.Scope, SlackMaxText)),
		mrkdwn(escape(fmt.Sprintf("%s to %s (%s); changes against the %s before",
			d.Since.Format("2006-01-02 15:04"), d.Until.Format("2006-01-02 15:04"), d.Timezone, d.Period)))}
	if d.URL != "" && len(d.URL) <= slackMaxURL {
		ctx = append(ctx, mrkdwn(mlink(d.URL, "Open in labtrail")))
	}
	b = append(b, Block{Type: "context", Elements: ctx})

	heading := func(name, url string) string { return "*" + mlink(url, name) + "*" }
	b = append(b, section(heading("DORA four keys", d.DORA.URL)), Block{Type: "section", Fields: []Text{
		field("Deployment frequency", d.DORA.DeploymentFrequency), field("Lead time for changes (median)", d.DORA.LeadTime),
		field("Change failure rate", d.DORA.ChangeFailureRate), field("Time to restore (median)", d.DORA.TimeToRestore),
	}})

	mr := d.MergeRequests
	b = append(b, Block{Type: "divider"}, Block{Type: "section", Text: ptr(mrkdwn(heading("Merge requests", mr.URL))),
		Fields: []Text{field("Merged", mr.Merged)}})
	if len(mr.Largest) > 0 {
		b = append(b, section(bounded(SlackMaxText, "*Largest merged*", itemLines(mr.Largest))))
	}
	if len(mr.SlowestOpen) > 0 {
		b = append(b, section(bounded(SlackMaxText, "*Slowest open*", itemLines(mr.SlowestOpen))))
	}

	b = append(b, Block{Type: "divider"}, section(heading("Deployments per environment", d.Deployments.URL)))
	envs := d.Deployments.Environments
	// The environments take the blocks the rest leaves: the tail blocks
	// (a divider, pipelines and failing jobs, incidents and their list,
	// the footer) are at most 6, and one says what was left out.
	room := SlackMaxBlocks - len(b) - 6 - 1
	if len(envs) == 0 {
		b = append(b, section("No deployment in either period."))
	}
	for i := 0; i < len(envs); i += SlackMaxFields {
		if room == 0 {
			b = append(b, section(fmt.Sprintf("…and %d more environments (%s)", len(envs)-i, mlink(d.Deployments.URL, "all of them"))))
			break
		}
		var fs []Text
		for _, e := range envs[i:min(i+SlackMaxFields, len(envs))] {
			name := e.Name
			if e.Production {
				name += " (production)"
			}
			fs = append(fs, field(cut(name, titleLimit), e.Deployments))
		}
		b = append(b, Block{Type: "section", Fields: fs})
		room--
	}

	p := d.Pipelines
	b = append(b, Block{Type: "divider"}, Block{Type: "section", Text: ptr(mrkdwn(heading("Pipelines", p.URL))),
		Fields: []Text{field("Pipelines", p.Pipelines), field("Failed", p.Failed)}})
	if len(p.FailingJobs) > 0 {
		b = append(b, section(bounded(SlackMaxText, "*Most failing jobs*", itemLines(p.FailingJobs))))
	}
	in := d.Incidents
	b = append(b, Block{Type: "section", Text: ptr(mrkdwn("*Incidents*")),
		Fields: []Text{field("Open at the end", in.Open), field("Opened", in.Opened)}})
	if len(in.List) > 0 {
		b = append(b, section(bounded(SlackMaxText, "*Open incidents*", itemLines(in.List))))
	}
	b = append(b, Block{Type: "context", Elements: []Text{mrkdwn(escape("Digest " + d.Key))}})
	return SlackMessage{Text: cut(d.Title, SlackMaxText), Blocks: b}
}

func ptr[T any](v T) *T { return &v }

// JSON is the digest as the generic webhook receives it.
func (d *Digest) JSON() ([]byte, error) { return json.MarshalIndent(d, "", "  ") }

// Text renders the digest for a terminal.
func (d *Digest) Text() string {
	var s strings.Builder
	w := func(format string, a ...any) { fmt.Fprintf(&s, format+"\n", a...) }
	w("%s", d.Title)
	w("%s, %s to %s (%s); changes against the %s before", d.Scope, d.Since.Format("2006-01-02 15:04"),
		d.Until.Format("2006-01-02 15:04"), d.Timezone, d.Period)
	if d.URL != "" {
		w("%s", d.URL)
	}
	list := func(items []Item) {
		for _, it := range items {
			l := "  - " + it.Title
			if dt := itemDetail(it); dt != "" {
				l += " (" + dt + ")"
			}
			if it.WebURL != "" {
				l += " " + it.WebURL
			}
			w("%s", l)
		}
	}
	w("\nDORA four keys")
	w("  Deployment frequency: %s", line(d.DORA.DeploymentFrequency))
	w("  Lead time for changes (median): %s", line(d.DORA.LeadTime))
	w("  Change failure rate: %s", line(d.DORA.ChangeFailureRate))
	w("  Time to restore (median): %s", line(d.DORA.TimeToRestore))
	w("\nMerge requests")
	w("  Merged: %s", line(d.MergeRequests.Merged))
	if len(d.MergeRequests.Largest) > 0 {
		w("  Largest merged:")
		list(d.MergeRequests.Largest)
	}
	if len(d.MergeRequests.SlowestOpen) > 0 {
		w("  Slowest open:")
		list(d.MergeRequests.SlowestOpen)
	}
	w("\nDeployments per environment")
	if len(d.Deployments.Environments) == 0 {
		w("  none in either period")
	}
	for _, e := range d.Deployments.Environments {
		prod := ""
		if e.Production {
			prod = " (production)"
		}
		w("  %s%s: %s", e.Name, prod, line(e.Deployments))
	}
	w("\nPipelines")
	w("  Pipelines: %s", line(d.Pipelines.Pipelines))
	w("  Failed: %s", line(d.Pipelines.Failed))
	if len(d.Pipelines.FailingJobs) > 0 {
		w("  Most failing jobs:")
		list(d.Pipelines.FailingJobs)
	}
	w("\nIncidents")
	w("  Open at the end: %s", line(d.Incidents.Open))
	w("  Opened: %s", line(d.Incidents.Opened))
	list(d.Incidents.List)
	return s.String()
}
