/**
 * The little XML that vSphere's SOAP needs: a namespace-aware parser into a plain element tree, and escaping for
 * the requests this agent writes. vSphere answers plain XML (no DTD, no entities of its own); an answer with a
 * DOCTYPE is refused rather than half-read. Prefixes are resolved through the xmlns declarations in scope, never
 * compared as written: vcsim writes the schema-instance type as `XMLSchema-instance:type`, vCenter as `xsi:type`.
 */

export const XSI_NS = 'http://www.w3.org/2001/XMLSchema-instance';
export const XML_NS = 'http://www.w3.org/XML/1998/namespace';
const XMLNS_NS = 'http://www.w3.org/2000/xmlns/';

export interface XmlName {
  /** The local name, without its prefix. */
  name: string;
  /** The namespace URI ('' for none). */
  ns: string;
}

export interface XmlElement extends XmlName {
  /**
   * Attributes by resolved name: `type` for one without a prefix (no namespace), `{uri}local` for one with a prefix,
   * e.g. `{http://www.w3.org/2001/XMLSchema-instance}type`. Namespace declarations are not attributes here.
   */
  attrs: Record<string, string>;
  children: XmlElement[];
  /** The element's own character data (text and CDATA between its children), entities decoded. */
  text: string;
  /** The xsi:type, its QName resolved in the element's scope; null without one. */
  xsiType: XmlName | null;
}

export class XmlParseError extends Error {
  constructor(message: string, readonly offset: number) {
    super(`${message} at offset ${offset}`);
    this.name = 'XmlParseError';
  }
}

/** The key of an attribute in `XmlElement.attrs`. */
export function attrKey(local: string, ns = ''): string {
  return ns ? `{${ns}}${local}` : local;
}

export function attr(el: XmlElement, local: string, ns = ''): string | undefined {
  return el.attrs[attrKey(local, ns)];
}

/** The first child of that local name (in any namespace: vSphere's answers put everything in one). */
export function child(el: XmlElement | null | undefined, name: string): XmlElement | null {
  return el?.children.find((c) => c.name === name) ?? null;
}

export function childrenNamed(el: XmlElement | null | undefined, name: string): XmlElement[] {
  return el ? el.children.filter((c) => c.name === name) : [];
}

/** The text of the element at that path of child names, or null when a step is missing. */
export function textAt(el: XmlElement | null | undefined, ...path: string[]): string | null {
  let at: XmlElement | null | undefined = el;
  for (const name of path) at = child(at, name);
  return at ? at.text : null;
}

const NAME_START = 'A-Za-z_\\u00C0-\\u00D6\\u00D8-\\u00F6\\u00F8-\\u02FF\\u0370-\\u037D\\u037F-\\u1FFF\\u200C-\\u200D\\u2070-\\u218F\\u2C00-\\u2FEF\\u3001-\\uD7FF\\uF900-\\uFDCF\\uFDF0-\\uFFFD';
const NAME_CHAR = `${NAME_START}\\-.0-9\\u00B7\\u0300-\\u036F\\u203F-\\u2040`;
/** A qualified name (with at most one colon), read in place with the sticky flag. */
const QNAME = new RegExp(`[${NAME_START}][${NAME_CHAR}]*(?::[${NAME_START}][${NAME_CHAR}]*)?`, 'y');
const SPACE = /[ \t\r\n]*/y;
const PREDEFINED: Record<string, string> = { lt: '<', gt: '>', amp: '&', quot: '"', apos: "'" };

interface Open {
  el: XmlElement;
  qname: string;
  scope: Map<string, string>;
  text: string[];
}

export function parseXml(xml: string): XmlElement {
  let pos = 0;
  const stack: Open[] = [];
  let root: XmlElement | null = null;
  const top = new Map<string, string>([['xml', XML_NS], ['xmlns', XMLNS_NS]]);

  const fail = (message: string, at = pos): never => {
    throw new XmlParseError(message, at);
  };
  const skipSpace = () => {
    SPACE.lastIndex = pos;
    SPACE.exec(xml);
    pos = SPACE.lastIndex;
  };
  const readName = (): string => {
    QNAME.lastIndex = pos;
    const m = QNAME.exec(xml);
    if (!m) fail('expected a name');
    pos = QNAME.lastIndex;
    return m![0];
  };
  const decode = (raw: string, at: number): string => {
    if (!raw.includes('&')) return raw;
    return raw.replace(/&([^;&<]*);?/g, (whole, ref: string, offset: number) => {
      if (!whole.endsWith(';')) fail('an unterminated entity reference', at + offset);
      if (ref in PREDEFINED) return PREDEFINED[ref];
      const code = /^#x[0-9A-Fa-f]+$/.test(ref) ? parseInt(ref.slice(2), 16) : /^#[0-9]+$/.test(ref) ? parseInt(ref.slice(1), 10) : NaN;
      if (Number.isNaN(code)) fail(`an unknown entity &${ref};`, at + offset);
      if (!isXmlChar(code)) fail(`a reference to a character XML does not allow (${code})`, at + offset);
      return String.fromCodePoint(code);
    });
  };
  const addText = (raw: string, at: number) => {
    const open = stack[stack.length - 1];
    if (!open) {
      if (/[^ \t\r\n]/.test(raw)) fail('text outside the root element', at);
      return;
    }
    open.text.push(decode(raw.replace(/\r\n?/g, '\n'), at));
  };
  const resolve = (qname: string, scope: Map<string, string>, isAttribute: boolean, at: number): XmlName => {
    const colon = qname.indexOf(':');
    if (colon < 0) return { name: qname, ns: isAttribute ? '' : scope.get('') ?? '' };
    const prefix = qname.slice(0, colon);
    const ns = scope.get(prefix);
    if (ns === undefined) fail(`an undeclared namespace prefix "${prefix}"`, at);
    return { name: qname.slice(colon + 1), ns: ns! };
  };

  while (pos < xml.length) {
    const lt = xml.indexOf('<', pos);
    if (lt < 0) {
      addText(xml.slice(pos), pos);
      pos = xml.length;
      break;
    }
    if (lt > pos) addText(xml.slice(pos, lt), pos);
    pos = lt;
    if (xml.startsWith('<?', pos)) {
      const end = xml.indexOf('?>', pos + 2);
      if (end < 0) fail('an unterminated processing instruction');
      pos = end + 2;
    } else if (xml.startsWith('<!--', pos)) {
      const end = xml.indexOf('-->', pos + 4);
      if (end < 0) fail('an unterminated comment');
      pos = end + 3;
    } else if (xml.startsWith('<![CDATA[', pos)) {
      const end = xml.indexOf(']]>', pos + 9);
      if (end < 0) fail('an unterminated CDATA section');
      if (!stack.length) fail('CDATA outside the root element');
      stack[stack.length - 1].text.push(xml.slice(pos + 9, end).replace(/\r\n?/g, '\n'));
      pos = end + 3;
    } else if (xml.startsWith('<!', pos)) {
      fail('a DOCTYPE or declaration, which a vSphere answer never has');
    } else if (xml.startsWith('</', pos)) {
      const at = pos;
      pos += 2;
      const qname = readName();
      skipSpace();
      if (xml[pos] !== '>') fail('expected ">"');
      pos++;
      const open = stack.pop();
      if (!open || open.qname !== qname) fail(`an end tag </${qname}> that closes ${open ? `<${open.qname}>` : 'nothing'}`, at);
      open!.el.text = open!.text.length === 1 ? open!.text[0] : open!.text.join('');
    } else {
      const at = pos;
      pos++;
      const qname = readName();
      const raw: { qname: string; value: string; at: number }[] = [];
      let selfClosing = false;
      for (;;) {
        const before = pos;
        skipSpace();
        if (xml.startsWith('/>', pos)) {
          selfClosing = true;
          pos += 2;
          break;
        }
        if (xml[pos] === '>') {
          pos++;
          break;
        }
        if (pos === before) fail('expected whitespace, ">" or "/>"');
        const attrAt = pos;
        const name = readName();
        skipSpace();
        if (xml[pos] !== '=') fail('expected "="');
        pos++;
        skipSpace();
        const quote = xml[pos];
        if (quote !== '"' && quote !== "'") fail('expected a quoted attribute value');
        const end = xml.indexOf(quote, pos + 1);
        if (end < 0) fail('an unterminated attribute value');
        const value = xml.slice(pos + 1, end);
        if (value.includes('<')) fail('"<" in an attribute value', pos);
        // attribute value normalization: literal white space becomes a space, references keep theirs
        raw.push({ qname: name, value: decode(value.replace(/\r\n|[\r\n\t]/g, ' '), pos + 1), at: attrAt });
        pos = end + 1;
      }
      const parentScope = stack.length ? stack[stack.length - 1].scope : top;
      let scope = parentScope;
      for (const a of raw) {
        if (a.qname !== 'xmlns' && !a.qname.startsWith('xmlns:')) continue;
        if (scope === parentScope) scope = new Map(parentScope);
        const prefix = a.qname === 'xmlns' ? '' : a.qname.slice(6);
        if (prefix === 'xmlns' || (prefix === 'xml') !== (a.value === XML_NS)) fail(`a declaration of the reserved prefix "${prefix}"`, a.at);
        if (prefix && !a.value) fail(`an empty namespace for prefix "${prefix}"`, a.at);
        scope.set(prefix, a.value);
      }
      const { name: local, ns } = resolve(qname, scope, false, at);
      const el: XmlElement = { name: local, ns, attrs: {}, children: [], text: '', xsiType: null };
      for (const a of raw) {
        if (a.qname === 'xmlns' || a.qname.startsWith('xmlns:')) continue;
        const { name, ns } = resolve(a.qname, scope, true, a.at);
        const key = attrKey(name, ns);
        if (key in el.attrs) fail(`the attribute ${key} twice`, a.at);
        el.attrs[key] = a.value;
      }
      const type = el.attrs[attrKey('type', XSI_NS)];
      if (type !== undefined) el.xsiType = resolve(type.trim(), scope, false, at);
      if (stack.length) stack[stack.length - 1].el.children.push(el);
      else if (root) fail('a second root element', at);
      else root = el;
      if (!selfClosing) stack.push({ el, qname, scope, text: [] });
    }
  }
  if (stack.length) fail(`<${stack[stack.length - 1].qname}> is not closed`);
  if (!root) fail('no root element');
  return root!;
}

function isXmlChar(code: number): boolean {
  return code === 0x9 || code === 0xa || code === 0xd || (code >= 0x20 && code <= 0xd7ff) || (code >= 0xe000 && code <= 0xfffd) || (code >= 0x10000 && code <= 0x10ffff);
}

/**
 * Text for element content or a quoted attribute value. A carriage return is written as a reference (a parser
 * would otherwise turn it into a line feed); a character XML 1.0 cannot carry at all (NUL, most C0 controls, lone
 * surrogates) is refused rather than dropped, so a name or password is never silently changed on the way.
 */
export function escapeXml(value: string | number | boolean): string {
  const text = String(value);
  for (let i = 0; i < text.length; i++) {
    const code = text.codePointAt(i)!;
    if (code > 0xffff) i++;
    if (!isXmlChar(code)) throw new Error(`a character XML cannot carry (U+${code.toString(16).toUpperCase().padStart(4, '0')}) at position ${i}`);
  }
  return text.replace(/[&<>"'\r]/g, (c) => (c === '&' ? '&amp;' : c === '<' ? '&lt;' : c === '>' ? '&gt;' : c === '"' ? '&quot;' : c === "'" ? '&apos;' : '&#13;'));
}
