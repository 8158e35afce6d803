import { describe, expect, it } from 'vitest';
import { RevcolError } from '../src/core/errors.js';
import { collapseSymbolRuns, countLabels } from '../src/data/text.js';
import { TEXT_PRESETS, configObject, validateConfig } from '../src/text/presets.js';
import { spamAssassinDecodedText, spamAssassinText } from '../src/text/datasets/spam-assassin.js';
import { loadTask, taskNames } from '../src/text/tasks.js';

describe('built-in tasks', () => {
  it('lists spam, and an unknown task is a one-line error naming the tasks', async () => {
    expect(taskNames()).toContain('spam');
    const err = await loadTask('hamster').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(RevcolError);
    expect((err as Error).message).toMatch(/unknown task "hamster".*spam/);
  });

  it('spam: the documented, fixed, stratified split of the SpamAssassin corpus', async () => {
    const task = await loadTask('spam');
    // Counts documented in docs/text-data.md: 6,046 messages, 100 repeated texts dropped, 80/20 by corpus group.
    expect(task.train.texts.length).toBe(4758);
    expect(task.test.texts.length).toBe(1188);
    expect(countLabels(task.train.labels)).toEqual({ ham: 3290, spam: 1468 });
    expect(countLabels(task.test.labels)).toEqual({ ham: 822, spam: 366 });
    const train = new Set(task.train.texts);
    expect(task.test.texts.some((t) => train.has(t))).toBe(false);
    // The sender-written headers are kept, routing headers are gone.
    expect(task.train.texts.filter((t) => /^From: /m.test(t.slice(0, t.indexOf('\n\n')))).length).toBeGreaterThan(4000);
    const withRouting = [...task.train.texts, ...task.test.texts].filter((t) => /^(Received|Return-Path|Delivered-To):/m.test(t.slice(0, t.indexOf('\n\n'))));
    expect(withRouting).toEqual([]);
    // The same split every time.
    const again = await loadTask('spam');
    expect(again.test.texts).toEqual(task.test.texts);
    expect(again.test.labels).toEqual(task.test.labels);
    expect(TEXT_PRESETS[task.preset]).toBeDefined();
    // The task's changes to its preset make a valid config.
    expect(() => validateConfig({ ...TEXT_PRESETS[task.preset], ...task.presetChanges, vocabSize: 30522, numLabels: 2 })).not.toThrow();
    expect(task.hyper.maxLength).toBeGreaterThanOrEqual(64);
    expect(task.hyper.epochs).toBeGreaterThan(0);
    expect(task.split).toContain('seed 0');
  });

  it('spam text: folded subject joined, headers dropped, body kept as stored', () => {
    const raw =
      'From someone@example.com  Thu Aug 22 12:36:23 2002\r\n' +
      'Received: from mx (mx [1.2.3.4])\r\n' +
      'SUBJECT: Cheap\r\n\tmeds   now\r\n' +
      'X-Mailer: Foo\r\n' +
      '\r\n' +
      'Buy now!\r\n\r\nReally.\r\n';
    expect(spamAssassinText(raw)).toBe('Subject: Cheap meds   now\n\nBuy now!\n\nReally.\n');
    expect(spamAssassinText('Subject: only headers')).toBe('Subject: only headers\n\n');
    expect(spamAssassinText('X-A: b\n\nbody without subject')).toBe('\n\nbody without subject');
    expect(spamAssassinText(raw, ['X-Mailer', 'Subject', 'To'])).toBe('X-Mailer: Foo\nSubject: Cheap meds   now\n\nBuy now!\n\nReally.\n');
    expect(spamAssassinText(raw, 'all')).toMatch(/^From someone.*\nReceived: .*\nX-Mailer: Foo\n\nBuy now!/s);
  });

  it('spam decoded text: MIME parts taken apart, encodings undone, HTML as text, attachments named', async () => {
    const multipart = [
      'Subject: =?utf-8?Q?Caf=C3=A9?= offer',
      'X-Mailer: Foo',
      'MIME-Version: 1.0',
      'Content-Type: multipart/mixed; boundary="XX"',
      '',
      '--XX',
      'Content-Type: text/plain; charset=utf-8',
      'Content-Transfer-Encoding: quoted-printable',
      '',
      'Half price on caf=C3=A9 =',
      'today,     only.',
      '',
      '',
      '',
      'Bye',
      '--XX',
      'Content-Type: application/octet-stream; name="setup.exe"',
      'Content-Disposition: attachment; filename="setup.exe"',
      'Content-Transfer-Encoding: base64',
      '',
      Buffer.from('MZ binary').toString('base64'),
      '--XX--',
      '',
    ].join('\r\n');
    // Header values stay as written (the raw text's kept headers), the body is decoded and tidied.
    expect(await spamAssassinDecodedText(multipart, ['Subject', 'X-Mailer'])).toBe(
      'Subject: =?utf-8?Q?Caf=C3=A9?= offer\nX-Mailer: Foo\nAttachment: application/octet-stream setup.exe\n\nHalf price on café today, only.\n\nBye\n',
    );
    const htmlOnly = [
      'Subject: Win',
      'Content-Type: text/html',
      'Content-Transfer-Encoding: base64',
      '',
      Buffer.from('<html><body><p>You <b>won</b>!</p><a href="http://win.example/x">Claim</a></body></html>').toString('base64'),
    ].join('\n');
    expect(await spamAssassinDecodedText(htmlOnly)).toBe('Subject: Win\n\nYou won!\n\nClaim [http://win.example/x]\n');
    // A plain message is its body with blank space cut.
    expect(await spamAssassinDecodedText('Subject: Hi\n\nHello   there\n\n\n\nBob\n')).toBe('Subject: Hi\n\nHello there\n\nBob\n');
  });

  it('spam source.body: "decoded" keeps the same split, and another value is a one-line error', async () => {
    const raw = await loadTask('spam');
    const decoded = await loadTask('spam', { source: { body: 'decoded' } });
    expect(decoded.test.labels).toEqual(raw.test.labels);
    // Same messages in the same order: their first kept header line agrees.
    const firstLines = (texts: string[]) => texts.map((t) => t.slice(0, t.indexOf('\n')));
    expect(firstLines(decoded.test.texts)).toEqual(firstLines(raw.test.texts));
    expect(decoded.source).toContain('decoded body');
    // Decoding undoes quoted-printable: its escaped "=" (=3D) is gone.
    const quotedPrintable = (texts: string[]) => texts.filter((t) => /=3D/.test(t.slice(t.indexOf('\n\n')))).length;
    expect(quotedPrintable(raw.test.texts)).toBeGreaterThan(50);
    expect(quotedPrintable(decoded.test.texts)).toBe(0);
    await expect(loadTask('spam', { source: { body: 'html' } })).rejects.toThrow(/source.body must be "raw".*or "decoded"/);
  });

  it('collapseSymbolRuns cuts runs of one symbol, and leaves letters, digits and spaces', () => {
    expect(collapseSymbolRuns('a____________b ***** c -- d ... e !!!! f', 3)).toBe('a___b *** c -- d ... e !!! f');
    expect(collapseSymbolRuns('1111111 aaaaaa      x', 3)).toBe('1111111 aaaaaa      x');
    expect(collapseSymbolRuns('=3D=3D ==== -*-*-*-*', 2)).toBe('=3D=3D == -*-*-*-*');
    expect(collapseSymbolRuns('\u{1F600}'.repeat(5), 3)).toBe('\u{1F600}'.repeat(3));
  });

  it('preset changes in a task file take only config keys', () => {
    expect(configObject({ dropout: 0.3 }, 'task file x: presetChanges')).toEqual({ dropout: 0.3 });
    expect(() => configObject({ dropuot: 0.3 }, 'task file x: presetChanges')).toThrow(/task file x: presetChanges has unknown keys dropuot: allowed are vocabSize/);
    expect(() => configObject([0.3], 'task file x: presetChanges')).toThrow(/must hold a JSON object/);
    expect(() => configObject({ preset: 'text-tiny' }, 'task file x: presetChanges')).toThrow(/unknown keys preset/);
  });
});
