import { packRequests } from './block-reader';

describe('packRequests: how checkBlocks groups the blocks it reads', () => {
  const all = () => true;

  it('fills each request with pieces of as many runs as it takes, in block order', () => {
    const runs = [
      { first: 0, count: 1 },
      { first: 5, count: 1 },
      { first: 9, count: 6 },
      { first: 40, count: 1 },
    ];
    expect(packRequests(runs, 4, all)).toEqual({
      requests: [
        { pieces: [{ first: 0, count: 1 }, { first: 5, count: 1 }, { first: 9, count: 2 }], blocks: 4 },
        { pieces: [{ first: 11, count: 4 }], blocks: 4 },
        { pieces: [{ first: 40, count: 1 }], blocks: 1 },
      ],
      beyond: [],
    });
  });

  it('splits a long run into whole requests', () => {
    const { requests } = packRequests([{ first: 3, count: 10 }], 4, all);
    expect(requests.map((r) => r.pieces)).toEqual([[{ first: 3, count: 4 }], [{ first: 7, count: 4 }], [{ first: 11, count: 2 }]]);
  });

  it('lists the blocks beyond the image apart and reads none of them', () => {
    const { requests, beyond } = packRequests([{ first: 0, count: 3 }, { first: 6, count: 3 }], 8, (b) => b < 7);
    expect(requests).toEqual([{ pieces: [{ first: 0, count: 3 }, { first: 6, count: 1 }], blocks: 4 }]);
    expect(beyond).toEqual([7, 8]);
  });

  it('reads nothing for no runs', () => {
    expect(packRequests([], 4, all)).toEqual({ requests: [], beyond: [] });
  });
});
