/** The GraphQL documents the benchmark sends; the baseline answers exactly these two, by hand. */
export const TRIVIAL_QUERY = '{ viewer { tenant { name: slug } } }';
export const PODS_QUERY = '{ pods(first: 20) { totalCount edges { node { id name phase ip } } } }';
/** How many pods the benchmark tenant gets, so that a page of 20 is full and more follow. */
export const BENCH_PODS = 25;
