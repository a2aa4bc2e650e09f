/**
 * TestUsdc (./contracts/TestUsdc.sol): compile it in-process with the `solc` npm package and put it
 * on a dev chain, either deployed or planted at a fixed address (Base's USDC) with anvil_setCode.
 */
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import {
  getAddress,
  parseAbi,
  testActions,
  type Abi,
  type Account,
  type Address,
  type Chain,
  type Client,
  type Hash,
  type Hex,
  type Transport,
} from 'viem';
import { deployContract, readContract, waitForTransactionReceipt, writeContract } from 'viem/actions';

/** Circle's USDC on Base mainnet; the official x402 clients' default asset for eip155:8453. */
export const BASE_USDC: Address = '0x833589fCD6eDb6E08f4c7C32D4f71b54bdA02913';

/** The EIP-712 domain TestUsdc uses unless told otherwise; the same as USDC's on Base. */
export const TEST_USDC_DEFAULT_NAME = 'USD Coin';
export const TEST_USDC_DEFAULT_VERSION = '2';
export const TEST_USDC_DECIMALS = 6;

/**
 * TestUsdc's interface, typed for viem. `compileTestUsdc().abi` is the compiler's word; this is
 * the same interface written out so calls are type-checked (the e2e test checks they agree).
 */
export const TEST_USDC_ABI = parseAbi([
  'constructor(string name_, string version_)',
  'function initialize(string name_, string version_)',
  'function name() view returns (string)',
  'function symbol() pure returns (string)',
  'function decimals() pure returns (uint8)',
  'function version() view returns (string)',
  'function DOMAIN_SEPARATOR() view returns (bytes32)',
  'function TRANSFER_WITH_AUTHORIZATION_TYPEHASH() view returns (bytes32)',
  'function RECEIVE_WITH_AUTHORIZATION_TYPEHASH() view returns (bytes32)',
  'function CANCEL_AUTHORIZATION_TYPEHASH() view returns (bytes32)',
  'function totalSupply() view returns (uint256)',
  'function balanceOf(address account) view returns (uint256)',
  'function allowance(address owner, address spender) view returns (uint256)',
  'function approve(address spender, uint256 value) returns (bool)',
  'function transfer(address to, uint256 value) returns (bool)',
  'function transferFrom(address from, address to, uint256 value) returns (bool)',
  'function mint(address to, uint256 value)',
  'function authorizationState(address authorizer, bytes32 nonce) view returns (bool)',
  'function transferWithAuthorization(address from, address to, uint256 value, uint256 validAfter, uint256 validBefore, bytes32 nonce, uint8 v, bytes32 r, bytes32 s)',
  'function transferWithAuthorization(address from, address to, uint256 value, uint256 validAfter, uint256 validBefore, bytes32 nonce, bytes signature)',
  'function receiveWithAuthorization(address from, address to, uint256 value, uint256 validAfter, uint256 validBefore, bytes32 nonce, uint8 v, bytes32 r, bytes32 s)',
  'function receiveWithAuthorization(address from, address to, uint256 value, uint256 validAfter, uint256 validBefore, bytes32 nonce, bytes signature)',
  'function cancelAuthorization(address authorizer, bytes32 nonce, uint8 v, bytes32 r, bytes32 s)',
  'function cancelAuthorization(address authorizer, bytes32 nonce, bytes signature)',
  'event Transfer(address indexed from, address indexed to, uint256 value)',
  'event Approval(address indexed owner, address indexed spender, uint256 value)',
  'event AuthorizationUsed(address indexed authorizer, bytes32 indexed nonce)',
  'event AuthorizationCanceled(address indexed authorizer, bytes32 indexed nonce)',
]);

/** What the dev chain needs of a compiled contract. */
export interface ContractArtifact {
  readonly abi: Abi;
  /** Creation code (constructor arguments are appended at deployment). */
  readonly bytecode: Hex;
  /** Runtime code, for anvil_setCode. */
  readonly deployedBytecode: Hex;
}

/** Cancun: anvil's default hardfork is newer, and cancun has all these contracts need. */
const EVM_VERSION = 'cancun';

let testUsdc: ContractArtifact | undefined;

/**
 * Compiles TestUsdc (1.5 to 2 s of solc on one core, solc load included), once per process.
 * Its creation code takes constructor(string name_, string version_); empty strings keep the
 * USDC defaults.
 */
export function compileTestUsdc(): ContractArtifact {
  testUsdc ??= compileSolidity(
    readFileSync(new URL('./contracts/TestUsdc.sol', import.meta.url), 'utf8'),
    'TestUsdc',
  );
  return testUsdc;
}

/**
 * Compiles one Solidity contract with the bundled solc: offline, optimiser on, no imports.
 * Also for tests that need a helper contract (e.g. an ERC-1271 wallet). solc is loaded here,
 * not imported at the top: it is an 8 MB emscripten module (~0.4 s to load), and importing this
 * file for `BASE_USDC` should not pay for it. Like anvil, it is a devDependency.
 */
export function compileSolidity(source: string, contractName: string): ContractArtifact {
  const sourceName = `${contractName}.sol`;
  const input = {
    language: 'Solidity',
    sources: { [sourceName]: { content: source } },
    settings: {
      optimizer: { enabled: true, runs: 200 },
      evmVersion: EVM_VERSION,
      outputSelection: { [sourceName]: { [contractName]: ['abi', 'evm.bytecode.object', 'evm.deployedBytecode.object'] } },
    },
  };
  // solc ships `any` types; pin the one function we use to its documented shape.
  const solc: { compile: (standardJsonInput: string) => string } = createRequire(import.meta.url)('solc');
  const output: unknown = JSON.parse(solc.compile(JSON.stringify(input)));
  return Object.freeze(readArtifact(output, sourceName, contractName));
}

/** Narrows solc's standard-JSON output to one contract, failing loudly on compile errors. */
function readArtifact(output: unknown, sourceName: string, contractName: string): ContractArtifact {
  const errors = field(output, 'errors');
  if (Array.isArray(errors)) {
    const fatal = errors.filter((e) => field(e, 'severity') === 'error');
    if (fatal.length > 0) {
      const messages = fatal.map((e) => String(field(e, 'formattedMessage'))).join('\n');
      throw new Error(`solc failed to compile ${sourceName}:\n${messages}`);
    }
  }
  const contract = field(field(field(output, 'contracts'), sourceName), contractName);
  const abi = field(contract, 'abi');
  const bytecode = field(field(field(contract, 'evm'), 'bytecode'), 'object');
  const deployedBytecode = field(field(field(contract, 'evm'), 'deployedBytecode'), 'object');
  if (!isAbi(abi) || !isHexBody(bytecode) || !isHexBody(deployedBytecode)) {
    throw new Error(`solc output has no abi or bytecode for ${contractName} in ${sourceName}`);
  }
  return { abi, bytecode: `0x${bytecode}`, deployedBytecode: `0x${deployedBytecode}` };
}

function field(value: unknown, key: string): unknown {
  return typeof value === 'object' && value !== null && Object.hasOwn(value, key) ? Reflect.get(value, key) : undefined;
}

/** A shallow check: solc's ABI JSON is trusted to be well-formed once it is a list of typed entries. */
function isAbi(value: unknown): value is Abi {
  return Array.isArray(value) && value.every((entry) => typeof field(entry, 'type') === 'string');
}

function isHexBody(value: unknown): value is string {
  return typeof value === 'string' && value.length > 0 && /^[0-9a-f]*$/i.test(value);
}

export interface InstallTestUsdcOptions {
  /** Plant the runtime code at this address (anvil_setCode) instead of deploying. */
  readonly at?: Address;
  /** EIP-712 domain name; default "USD Coin". */
  readonly name?: string;
  /** EIP-712 domain version; default "2". */
  readonly version?: string;
}

/** A client that can send transactions: an account and a chain are set. */
export type SendingClient = Client<Transport, Chain, Account>;

/**
 * Puts TestUsdc on an anvil chain and returns its address.
 *
 * With `at`, the code is planted there and the constructor never runs: name and version are
 * stored by `initialize`, called only when one of them is given (empty storage reads as the
 * USDC defaults, so the default install costs no transaction). Storage at `at` is left as it is,
 * so reinstalling keeps balances, and a second install there with a name or version reverts
 * ("already initialized"). Meant for fresh chains: on a fork, the address's old storage would be
 * read with this contract's layout.
 */
export async function installTestUsdc(client: SendingClient, opts: InstallTestUsdcOptions = {}): Promise<Address> {
  const { bytecode, deployedBytecode } = compileTestUsdc();
  const name = opts.name ?? '';
  const version = opts.version ?? '';

  if (opts.at === undefined) {
    const hash = await deployContract(client, { abi: TEST_USDC_ABI, bytecode, args: [name, version] });
    const receipt = await waitForTransactionReceipt(client, { hash });
    if (receipt.status !== 'success' || receipt.contractAddress == null) {
      throw new Error(`TestUsdc deployment failed (tx ${hash})`);
    }
    return getAddress(receipt.contractAddress);
  }

  const at = getAddress(opts.at);
  await testActions({ mode: 'anvil' })(client).setCode({ address: at, bytecode: deployedBytecode });
  if (opts.name !== undefined || opts.version !== undefined) {
    await confirm(client, await writeContract(client, {
      address: at,
      abi: TEST_USDC_ABI,
      functionName: 'initialize',
      args: [name, version],
    }));
  }
  return at;
}

export interface MintTestUsdcOptions {
  readonly token: Address;
  readonly to: Address;
  /** Atomic units (6 decimals): 1_000_000n is one USDC. */
  readonly amount: bigint;
}

/** Mints (anyone may, on TestUsdc) and waits for the receipt; returns the transaction hash. */
export async function mintTestUsdc(client: SendingClient, opts: MintTestUsdcOptions): Promise<Hash> {
  const hash = await writeContract(client, {
    address: opts.token,
    abi: TEST_USDC_ABI,
    functionName: 'mint',
    args: [opts.to, opts.amount],
  });
  return confirm(client, hash);
}

/** `balanceOf(owner)` in atomic units; works with any ERC-20, not only TestUsdc. */
export function usdcBalance(client: Client, token: Address, owner: Address): Promise<bigint> {
  return readContract(client, { address: token, abi: TEST_USDC_ABI, functionName: 'balanceOf', args: [owner] });
}

/** Waits for the receipt and turns a reverted transaction into an error. */
async function confirm(client: Client, hash: Hash): Promise<Hash> {
  const receipt = await waitForTransactionReceipt(client, { hash });
  if (receipt.status !== 'success') throw new Error(`transaction ${hash} reverted`);
  return hash;
}
