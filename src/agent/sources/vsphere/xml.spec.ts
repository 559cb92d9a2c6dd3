import { attr, child, childrenNamed, escapeXml, parseXml, textAt, XmlParseError, XSI_NS } from './xml';

describe('parseXml', () => {
  it('resolves prefixes through the declarations in scope: XMLSchema-instance:type and xsi:type are the same attribute, a MoRef type is another', () => {
    const doc = parseXml(
      '<?xml version="1.0" encoding="UTF-8"?>\n' +
        '<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" xmlns:xsd="http://www.w3.org/2001/XMLSchema" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">' +
        '<soapenv:Body><R xmlns="urn:vim25">' +
        '<val xmlns:XMLSchema-instance="http://www.w3.org/2001/XMLSchema-instance" XMLSchema-instance:type="ManagedObjectReference" type="Folder">group-d1</val>' +
        '<val xsi:type="xsd:string">text</val>' +
        '<val xmlns:i="urn:other" i:type="Nope">x</val>' +
        '</R></soapenv:Body></soapenv:Envelope>',
    );
    expect(doc).toMatchObject({ name: 'Envelope', ns: 'http://schemas.xmlsoap.org/soap/envelope/' });
    const body = child(doc, 'Body')!;
    const r = child(body, 'R')!;
    expect(r.ns).toBe('urn:vim25');
    const [moref, str, other] = childrenNamed(r, 'val');
    expect(moref.ns).toBe('urn:vim25');
    expect(moref.attrs).toEqual({ type: 'Folder', [`{${XSI_NS}}type`]: 'ManagedObjectReference' });
    expect(attr(moref, 'type')).toBe('Folder');
    expect(attr(moref, 'type', XSI_NS)).toBe('ManagedObjectReference');
    expect(moref.xsiType).toEqual({ name: 'ManagedObjectReference', ns: 'urn:vim25' });
    expect(moref.text).toBe('group-d1');
    expect(str.xsiType).toEqual({ name: 'string', ns: 'http://www.w3.org/2001/XMLSchema' });
    expect(other.xsiType).toBeNull();
    expect(attr(other, 'type', 'urn:other')).toBe('Nope');
  });

  it('scopes a declaration to its element: a sibling does not see it', () => {
    expect(() => parseXml('<a><b xmlns:p="urn:p"><p:c/></b><p:d/></a>')).toThrow(/undeclared namespace prefix "p"/);
    const a = parseXml('<a xmlns="urn:a"><b xmlns="urn:b"><c/></b><d/></a>');
    expect(child(child(a, 'b'), 'c')!.ns).toBe('urn:b');
    expect(child(a, 'd')!.ns).toBe('urn:a');
    expect(parseXml('<a xmlns="urn:a"><b xmlns=""/></a>').children[0].ns).toBe('');
  });

  it('decodes entities, character references and CDATA, and keeps significant white space', () => {
    const el = parseXml('<a t="x &amp; &quot;y&quot;&#9;\tz">&lt;1&gt; &#x1F600; &#65;<![CDATA[<raw> & ]]>  <b>Keyboard </b></a>');
    expect(el.attrs.t).toBe('x & "y"\t z');
    expect(el.text).toBe('<1> 😀 A<raw> &   ');
    expect(textAt(el, 'b')).toBe('Keyboard ');
    expect(parseXml('<a>line\r\nnext\rlast</a>').text).toBe('line\nnext\nlast');
    expect(parseXml("<a b='single \"quoted\"'/>").attrs.b).toBe('single "quoted"');
  });

  it('reads an empty element and comments and processing instructions around the root', () => {
    const el = parseXml('<!-- c --><?pi x?>\n<a><!-- inside --><b/><c></c></a>\n<!-- after -->');
    expect(el.children.map((c) => [c.name, c.text, c.children.length])).toEqual([
      ['b', '', 0],
      ['c', '', 0],
    ]);
    expect(textAt(el, 'c')).toBe('');
    expect(textAt(el, 'missing', 'x')).toBeNull();
  });

  it.each([
    ['<!DOCTYPE a [<!ENTITY x "boom">]><a>&x;</a>', /DOCTYPE/],
    ['<a>&x;</a>', /unknown entity &x;/],
    ['<a>&amp</a>', /unterminated entity/],
    ['<a>&#0;</a>', /character XML does not allow/],
    ['<a><b></a></b>', /closes <b>/],
    ['<a>', /<a> is not closed/],
    ['<a/><b/>', /second root/],
    ['text<a/>', /text outside/],
    ['<a b="1" b="2"/>', /attribute b twice/],
    ['<a xmlns:p="urn:x" xmlns:q="urn:x" p:b="1" q:b="2"/>', /attribute \{urn:x\}b twice/],
    ['<a b=1/>', /quoted attribute/],
    ['<a b="1"c="2"/>', /expected whitespace/],
    ['<a b="<"/>', /"<" in an attribute/],
    ['<p:a/>', /undeclared namespace prefix "p"/],
    ['<a xmlns:p=""/>', /empty namespace/],
    ['', /no root element/],
  ])('refuses %j', (xml, message) => {
    expect(() => parseXml(xml)).toThrow(XmlParseError);
    expect(() => parseXml(xml)).toThrow(message);
  });

  it('parses a large answer in reasonable time', () => {
    const devices = Array.from({ length: 20_000 }, (_, i) => `<VirtualDevice xsi:type="VirtualDisk"><key>${i}</key><deviceInfo xsi:type="Description"><label>Hard disk ${i}</label></deviceInfo></VirtualDevice>`).join('');
    const started = Date.now();
    const doc = parseXml(`<val xmlns="urn:vim25" xmlns:xsi="${XSI_NS}" xsi:type="ArrayOfVirtualDevice">${devices}</val>`);
    expect(doc.children).toHaveLength(20_000);
    expect(textAt(doc.children[19_999], 'deviceInfo', 'label')).toBe('Hard disk 19999');
    expect(Date.now() - started).toBeLessThan(5_000);
  });
});

describe('escapeXml', () => {
  it('escapes markup so a value reads back as written', () => {
    const value = `p<a>&s"s'w\r\nord 😀`;
    expect(escapeXml(value)).toBe('p&lt;a&gt;&amp;s&quot;s&apos;w&#13;\nord 😀');
    expect(parseXml(`<a v="${escapeXml('a"b')}">${escapeXml(value)}</a>`)).toMatchObject({ text: value, attrs: { v: 'a"b' } });
    expect(escapeXml(42)).toBe('42');
  });

  it('refuses characters XML cannot carry instead of dropping them', () => {
    expect(() => escapeXml('a\u0000b')).toThrow(/U\+0000/);
    expect(() => escapeXml('a\u0007b')).toThrow(/U\+0007/);
    expect(() => escapeXml('lone \uD800 surrogate')).toThrow(/U\+D800/);
  });
});
