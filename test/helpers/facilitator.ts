/**
 * Facilitators for tests, both over real HTTP on 127.0.0.1 and an OS-chosen port:
 *
 * - `startTestFacilitator`: a REAL one, the official `x402Facilitator` (@x402/core) with
 *   @x402/evm's exact scheme registered (v2 for the given chain, v1 for every EVM network name
 *   it knows), settling on an anvil chain with its own key. Served like the official example
 *   facilitator: 200 with the result, 400 `{error}` for a body without the two fields, 500
 *   `{error}` when the facilitator throws.
 * - `startFakeFacilitator`: canned answers for pure-protocol tests of the client.
 *
 * Both record every request they receive.
 */
import { createServer, type IncomingHttpHeaders, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { x402Facilitator } from '@x402/core/facilitator';
import type { PaymentPayload, PaymentRequirements } from '@x402/core/types';
import { toFacilitatorEvmSigner } from '@x402/evm';
import { registerExactEvmScheme } from '@x402/evm/exact/facilitator';
import { testActions, type Abi, type Address, type Chain, type Client, type Hex, type Transport, type TypedData } from 'viem';
import { call, getCode } from 'viem/actions';
import { createDevChainClient, type DevChainClient } from '../../src/tools/devchain/anvil.js';

/** A request a test facilitator received. */
export interface RecordedRequest {
  readonly method: string;
  readonly path: string;
  readonly headers: IncomingHttpHeaders;
  /** The parsed JSON body; `undefined` when there was none or it did not parse. */
  readonly body: unknown;
}

export interface StartTestFacilitatorOptions {
  readonly rpcUrl: string;
  readonly chainId: number;
  /** The facilitator's own key: it submits `transferWithAuthorization` and pays the gas. */
  readonly privateKey: Hex;
  /**
   * Bound on each receipt wait (`toFacilitatorEvmSigner`'s `confirmationTimeoutMs`). With
   * anvil's automine off, a short bound makes `/settle` answer `settlement_pending`.
   */
  readonly confirmationTimeoutMs?: number;
  /** Plant Multicall3 first (default true); false shows how the facilitator behaves on a bare chain. */
  readonly multicall3?: boolean;
}

export interface TestFacilitator {
  readonly url: string;
  /** The facilitator's settlement account. */
  readonly address: Address;
  readonly requests: readonly RecordedRequest[];
  close(): Promise<void>;
}

/** Where Multicall3 lives on every chain that has it, and where @x402/evm calls it. */
export const MULTICALL3_ADDRESS: Address = '0xcA11bde05977b3631167028862bE2a173976CA11';

/**
 * Starts the official facilitator on loopback. Plants Multicall3 on the chain first (see
 * `installMulticall3`): without it @x402/evm still verifies and settles a good payment, but every
 * refusal that only the simulation finds (a used nonce, a low balance, a wrong EIP-712 domain)
 * comes back as the generic `invalid_exact_evm_transaction_simulation_failed`.
 */
export async function startTestFacilitator(opts: StartTestFacilitatorOptions): Promise<TestFacilitator> {
  const client = createDevChainClient({ rpcUrl: opts.rpcUrl, chainId: opts.chainId }, opts.privateKey);
  if (opts.multicall3 !== false) await installMulticall3(client);

  const facilitator = new x402Facilitator();
  registerExactEvmScheme(facilitator, {
    signer: facilitatorSigner(client, opts.confirmationTimeoutMs),
    networks: `eip155:${opts.chainId}`,
  });

  const served = await serve(async (req, body) => {
    if (req.method === 'GET' && req.url === '/supported') return [200, facilitator.getSupported()];
    if (req.method !== 'POST' || (req.url !== '/verify' && req.url !== '/settle')) return [404, { error: 'not found' }];
    if (!isFacilitatorRequest(body)) return [400, { error: 'Missing paymentPayload or paymentRequirements' }];
    try {
      const result =
        req.url === '/verify'
          ? await facilitator.verify(body.paymentPayload, body.paymentRequirements)
          : await facilitator.settle(body.paymentPayload, body.paymentRequirements);
      return [200, result];
    } catch (error) {
      return [500, { error: error instanceof Error ? error.message : String(error) }];
    }
  });
  return { url: served.url, address: client.account.address, requests: served.requests, close: served.close };
}

/**
 * The official example facilitator's request check, no more: the facilitator and its schemes
 * read the rest themselves, and a malformed payload makes them throw (a 500), as in production.
 * v1 payloads lack `accepted`, so they are not `PaymentPayload`s in @x402/core's types although
 * `x402Facilitator` routes them by `x402Version`; the guard vouches only for the envelope.
 */
function isFacilitatorRequest(
  body: unknown,
): body is { paymentPayload: PaymentPayload; paymentRequirements: PaymentRequirements } {
  return (
    isRecord(body) &&
    isRecord(body['paymentPayload']) &&
    typeof body['paymentPayload']['x402Version'] === 'number' &&
    isRecord(body['paymentRequirements'])
  );
}

/**
 * The signer @x402/evm's facilitator schemes expect, over a viem wallet + public client.
 * @x402/evm types ABIs and typed data loosely (`readonly unknown[]`, `Record<string, unknown>`);
 * the guards below check the shape before handing them to viem's typed actions.
 */
function facilitatorSigner(client: DevChainClient, confirmationTimeoutMs: number | undefined) {
  return toFacilitatorEvmSigner(
    {
      address: client.account.address,
      readContract: (args) =>
        client.readContract({ address: args.address, abi: asAbi(args.abi), functionName: args.functionName, args: args.args ?? [] }),
      verifyTypedData: (args) =>
        client.verifyTypedData({
          address: args.address,
          domain: args.domain,
          types: asTypedData(args.types),
          primaryType: args.primaryType,
          message: args.message,
          signature: args.signature,
        }),
      writeContract: (args) =>
        client.writeContract({
          address: args.address,
          abi: asAbi(args.abi),
          functionName: args.functionName,
          args: args.args,
          ...(args.gas === undefined ? {} : { gas: args.gas }),
          ...(args.dataSuffix === undefined ? {} : { dataSuffix: args.dataSuffix }),
        }),
      sendTransaction: (args) => client.sendTransaction({ to: args.to, data: args.data }),
      waitForTransactionReceipt: (args) =>
        client.waitForTransactionReceipt({ hash: args.hash, ...(args.timeout === undefined ? {} : { timeout: args.timeout }) }),
      getCode: (args) => client.getCode({ address: args.address }),
    },
    confirmationTimeoutMs === undefined ? {} : { confirmationTimeoutMs },
  );
}

function asAbi(abi: readonly unknown[]): Abi {
  if (!abi.every((entry) => isRecord(entry) && typeof entry['type'] === 'string')) throw new TypeError('not an ABI');
  return abi as Abi; // each entry checked above to be a typed ABI item; viem validates the rest when encoding
}

function asTypedData(types: Record<string, unknown>): TypedData {
  const ok = Object.values(types).every(
    (fields) =>
      Array.isArray(fields) &&
      fields.every((f) => isRecord(f) && typeof f['name'] === 'string' && typeof f['type'] === 'string'),
  );
  if (!ok) throw new TypeError('not EIP-712 types');
  return types as TypedData; // every struct checked above to be a list of {name, type}
}

/**
 * Plants Multicall3 at its canonical address unless code is there already. Fresh anvil has none,
 * and @x402/evm's verify uses it (only) to explain a failed simulation: `authorizationState`,
 * `balanceOf`, `name`, `version` in one `tryAggregate`. The creation code is run with
 * `eth_call` (Multicall3 has no constructor arguments or immutables), and what it returns is the
 * exact runtime code `anvil_setCode` plants.
 */
export async function installMulticall3(client: Client<Transport, Chain>): Promise<void> {
  const existing = await getCode(client, { address: MULTICALL3_ADDRESS });
  if (existing !== undefined && existing !== '0x') return;
  const { data: runtime } = await call(client, { data: MULTICALL3_CREATION_CODE });
  if (runtime === undefined || runtime === '0x') throw new Error('Multicall3 creation code returned no runtime code');
  await testActions({ mode: 'anvil' })(client).setCode({ address: MULTICALL3_ADDRESS, bytecode: runtime });
}

// ---- the fake facilitator ----

/** A canned answer: status and JSON body (a string is sent as is, for malformed bodies). */
export interface FakeAnswer {
  readonly status: number;
  readonly body?: unknown;
  readonly headers?: Readonly<Record<string, string>>;
  /** Never answer (until the server closes): for timeouts. */
  readonly hang?: boolean;
  /** Send the status and the first bytes of the body, then stall: for timeouts mid-body. */
  readonly stallBody?: boolean;
}

export type FakeHandler = (req: RecordedRequest) => FakeAnswer | Promise<FakeAnswer>;

export interface FakeFacilitator {
  readonly url: string;
  readonly requests: readonly RecordedRequest[];
  /** Replaces the handler. */
  answer(handler: FakeHandler): void;
  close(): Promise<void>;
}

/** A facilitator that answers whatever the test tells it to. Default: 404 to everything. */
export async function startFakeFacilitator(handler: FakeHandler = () => ({ status: 404, body: { error: 'not found' } })): Promise<FakeFacilitator> {
  let current = handler;
  const hanging = new Set<ServerResponse>();
  const served = await serve(async (_req, _body, recorded, res) => {
    const answer = await current(recorded);
    if (answer.hang === true || answer.stallBody === true) {
      hanging.add(res);
      if (answer.stallBody === true) {
        res.writeHead(answer.status, { 'content-type': 'application/json', ...answer.headers });
        res.write('{"isValid":');
      }
      return undefined;
    }
    return [answer.status, answer.body, answer.headers];
  });
  return {
    url: served.url,
    requests: served.requests,
    answer: (next) => {
      current = next;
    },
    close: async () => {
      for (const res of hanging) res.destroy();
      await served.close();
    },
  };
}

// ---- shared plumbing ----

type Reply = readonly [status: number, body: unknown, headers?: Readonly<Record<string, string>> | undefined] | undefined;
type Route = (req: IncomingMessage, body: unknown, recorded: RecordedRequest, res: ServerResponse) => Promise<Reply>;

interface Served {
  readonly url: string;
  readonly requests: RecordedRequest[];
  close(): Promise<void>;
}

async function serve(route: Route): Promise<Served> {
  const requests: RecordedRequest[] = [];
  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => {
      const text = Buffer.concat(chunks).toString('utf8');
      let body: unknown;
      try {
        body = text === '' ? undefined : JSON.parse(text);
      } catch {
        body = undefined;
      }
      const recorded: RecordedRequest = { method: req.method ?? '', path: req.url ?? '', headers: req.headers, body };
      requests.push(recorded);
      route(req, body, recorded, res).then(
        (reply) => {
          if (reply === undefined) return;
          const [status, payload, headers] = reply;
          const out = typeof payload === 'string' ? payload : payload === undefined ? '' : JSON.stringify(payload);
          res.writeHead(status, { 'content-type': 'application/json', ...headers });
          res.end(out);
        },
        (err: unknown) => {
          res.writeHead(500, { 'content-type': 'application/json' });
          res.end(JSON.stringify({ error: err instanceof Error ? err.message : String(err) }));
        },
      );
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = portOf(server);
  return {
    url: `http://127.0.0.1:${port}`,
    requests,
    close: () =>
      new Promise<void>((resolve, reject) => {
        server.closeAllConnections();
        server.close((err) => (err ? reject(err) : resolve()));
      }),
  };
}

function portOf(server: Server): number {
  const address = server.address();
  if (address === null || typeof address === 'string') throw new Error('server is not listening on TCP');
  return address.port;
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/**
 * Multicall3's creation code (mds1/multicall v3), as viem 2.57.20 ships it
 * (`multicall3Bytecode` in viem's constants/contracts.ts, used for its deployless multicall;
 * viem does not export it).
 */
const MULTICALL3_CREATION_CODE: Hex =
  '0x608060405234801561001057600080fd5b506115b9806100206000396000f3fe6080604052600436106100f35760003560e01c80634d2301cc1161008a578063a8b0574e11610059578063a8b0574e14610325578063bce38bd714610350578063c3077fa914610380578063ee82ac5e146103b2576100f3565b80634d2301cc1461026257806372425d9d1461029f57806382ad56cb146102ca57806386d516e8146102fa576100f3565b80633408e470116100c65780633408e470146101af578063399542e9146101da5780633e64a6961461020c57806342cbb15c14610237576100f3565b80630f28c97d146100f8578063174dea7114610123578063252dba421461015357806327e86d6e14610184575b600080fd5b34801561010457600080fd5b5061010d6103ef565b60405161011a9190610c0a565b60405180910390f35b61013d60048036038101906101389190610c94565b6103f7565b60405161014a9190610e94565b60405180910390f35b61016d60048036038101906101689190610f0c565b610615565b60405161017b92919061101b565b60405180910390f35b34801561019057600080fd5b506101996107ab565b6040516101a69190611064565b60405180910390f35b3480156101bb57600080fd5b506101c46107b7565b6040516101d19190610c0a565b60405180910390f35b6101f460048036038101906101ef91906110ab565b6107bf565b6040516102039392919061110b565b60405180910390f35b34801561021857600080fd5b506102216107e1565b60405161022e9190610c0a565b60405180910390f35b34801561024357600080fd5b5061024c6107e9565b6040516102599190610c0a565b60405180910390f35b34801561026e57600080fd5b50610289600480360381019061028491906111a7565b6107f1565b6040516102969190610c0a565b60405180910390f35b3480156102ab57600080fd5b506102b4610812565b6040516102c19190610c0a565b60405180910390f35b6102e460048036038101906102df919061122a565b61081a565b6040516102f19190610e94565b60405180910390f35b34801561030657600080fd5b5061030f6109e4565b60405161031c9190610c0a565b60405180910390f35b34801561033157600080fd5b5061033a6109ec565b6040516103479190611286565b60405180910390f35b61036a600480360381019061036591906110ab565b6109f4565b6040516103779190610e94565b60405180910390f35b61039a60048036038101906103959190610f0c565b610ba6565b6040516103a99392919061110b565b60405180910390f35b3480156103be57600080fd5b506103d960048036038101906103d491906112cd565b610bca565b6040516103e69190611064565b60405180910390f35b600042905090565b60606000808484905090508067ffffffffffffffff81111561041c5761041b6112fa565b5b60405190808252806020026020018201604052801561045557816020015b610442610bd5565b81526020019060019003908161043a5790505b5092503660005b828110156105c957600085828151811061047957610478611329565b5b6020026020010151905087878381811061049657610495611329565b5b90506020028101906104a89190611367565b925060008360400135905080860195508360000160208101906104cb91906111a7565b73ffffffffffffffffffffffffffffffffffffffff16818580606001906104f2919061138f565b604051610500929190611431565b60006040518083038185875af1925050503d806000811461053d576040519150601f19603f3d011682016040523d82523d6000602084013e610542565b606091505b5083600001846020018290528215151515815250505081516020850135176105bc577f08c379a000000000000000000000000000000000000000000000000000000000600052602060045260176024527f4d756c746963616c6c333a2063616c6c206661696c656400000000000000000060445260846000fd5b826001019250505061045c565b5082341461060c576040517f08c379a0000000000000000000000000000000000000000000000000000000008152600401610603906114a7565b60405180910390fd5b50505092915050565b6000606043915060008484905090508067ffffffffffffffff81111561063e5761063d6112fa565b5b60405190808252806020026020018201604052801561067157816020015b606081526020019060019003908161065c5790505b5091503660005b828110156107a157600087878381811061069557610694611329565b5b90506020028101906106a791906114c7565b92508260000160208101906106bc91906111a7565b73ffffffffffffffffffffffffffffffffffffffff168380602001906106e2919061138f565b6040516106f0929190611431565b6000604051808303816000865af19150503d806000811461072d576040519150601f19603f3d011682016040523d82523d6000602084013e610732565b606091505b5086848151811061074657610745611329565b5b60200260200101819052819250505080610795576040517f08c379a000000000000000000000000000000000000000000000000000000000815260040161078c9061153b565b60405180910390fd5b81600101915050610678565b5050509250929050565b60006001430340905090565b600046905090565b6000806060439250434091506107d68686866109f4565b905093509350939050565b600048905090565b600043905090565b60008173ffffffffffffffffffffffffffffffffffffffff16319050919050565b600044905090565b606060008383905090508067ffffffffffffffff81111561083e5761083d6112fa565b5b60405190808252806020026020018201604052801561087757816020015b610864610bd5565b81526020019060019003908161085c5790505b5091503660005b828110156109db57600084828151811061089b5761089a611329565b5b602002602001015190508686838181106108b8576108b7611329565b5b90506020028101906108ca919061155b565b92508260000160208101906108df91906111a7565b73ffffffffffffffffffffffffffffffffffffffff16838060400190610905919061138f565b604051610913929190611431565b6000604051808303816000865af19150503d8060008114610950576040519150601f19603f3d011682016040523d82523d6000602084013e610955565b606091505b5082600001836020018290528215151515815250505080516020840135176109cf577f08c379a000000000000000000000000000000000000000000000000000000000600052602060045260176024527f4d756c746963616c6c333a2063616c6c206661696c656400000000000000000060445260646000fd5b8160010191505061087e565b50505092915050565b600045905090565b600041905090565b606060008383905090508067ffffffffffffffff811115610a1857610a176112fa565b5b604051908082528060200260200182016040528015610a5157816020015b610a3e610bd5565b815260200190600190039081610a365790505b5091503660005b82811015610b9c576000848281518110610a7557610a74611329565b5b60200260200101519050868683818110610a9257610a91611329565b5b9050602002810190610aa491906114c7565b9250826000016020810190610ab991906111a7565b73ffffffffffffffffffffffffffffffffffffffff16838060200190610adf919061138f565b604051610aed929190611431565b6000604051808303816000865af19150503d8060008114610b2a576040519150601f19603f3d011682016040523d82523d6000602084013e610b2f565b606091505b508260000183602001829052821515151581525050508715610b90578060000151610b8f576040517f08c379a0000000000000000000000000000000000000000000000000000000008152600401610b869061153b565b60405180910390fd5b5b81600101915050610a58565b5050509392505050565b6000806060610bb7600186866107bf565b8093508194508295505050509250925092565b600081409050919050565b6040518060400160405280600015158152602001606081525090565b6000819050919050565b610c0481610bf1565b82525050565b6000602082019050610c1f6000830184610bfb565b92915050565b600080fd5b600080fd5b600080fd5b600080fd5b600080fd5b60008083601f840112610c5457610c53610c2f565b5b8235905067ffffffffffffffff811115610c7157610c70610c34565b5b602083019150836020820283011115610c8d57610c8c610c39565b5b9250929050565b60008060208385031215610cab57610caa610c25565b5b600083013567ffffffffffffffff811115610cc957610cc8610c2a565b5b610cd585828601610c3e565b92509250509250929050565b600081519050919050565b600082825260208201905092915050565b6000819050602082019050919050565b60008115159050919050565b610d2281610d0d565b82525050565b600081519050919050565b600082825260208201905092915050565b60005b83811015610d62578082015181840152602081019050610d47565b83811115610d71576000848401525b50505050565b6000601f19601f8301169050919050565b6000610d9382610d28565b610d9d8185610d33565b9350610dad818560208601610d44565b610db681610d77565b840191505092915050565b6000604083016000830151610dd96000860182610d19565b5060208301518482036020860152610df18282610d88565b9150508091505092915050565b6000610e0a8383610dc1565b905092915050565b6000602082019050919050565b6000610e2a82610ce1565b610e348185610cec565b935083602082028501610e4685610cfd565b8060005b85811015610e825784840389528151610e638582610dfe565b9450610e6e83610e12565b925060208a01995050600181019050610e4a565b50829750879550505050505092915050565b60006020820190508181036000830152610eae8184610e1f565b905092915050565b60008083601f840112610ecc57610ecb610c2f565b5b8235905067ffffffffffffffff811115610ee957610ee8610c34565b5b602083019150836020820283011115610f0557610f04610c39565b5b9250929050565b60008060208385031215610f2357610f22610c25565b5b600083013567ffffffffffffffff811115610f4157610f40610c2a565b5b610f4d85828601610eb6565b92509250509250929050565b600081519050919050565b600082825260208201905092915050565b6000819050602082019050919050565b6000610f918383610d88565b905092915050565b6000602082019050919050565b6000610fb182610f59565b610fbb8185610f64565b935083602082028501610fcd85610f75565b8060005b858110156110095784840389528151610fea8582610f85565b9450610ff583610f99565b925060208a01995050600181019050610fd1565b50829750879550505050505092915050565b60006040820190506110306000830185610bfb565b81810360208301526110428184610fa6565b90509392505050565b6000819050919050565b61105e8161104b565b82525050565b60006020820190506110796000830184611055565b92915050565b61108881610d0d565b811461109357600080fd5b50565b6000813590506110a58161107f565b92915050565b6000806000604084860312156110c4576110c3610c25565b5b60006110d286828701611096565b935050602084013567ffffffffffffffff8111156110f3576110f2610c2a565b5b6110ff86828701610eb6565b92509250509250925092565b60006060820190506111206000830186610bfb565b61112d6020830185611055565b818103604083015261113f8184610e1f565b9050949350505050565b600073ffffffffffffffffffffffffffffffffffffffff82169050919050565b600061117482611149565b9050919050565b61118481611169565b811461118f57600080fd5b50565b6000813590506111a18161117b565b92915050565b6000602082840312156111bd576111bc610c25565b5b60006111cb84828501611192565b91505092915050565b60008083601f8401126111ea576111e9610c2f565b5b8235905067ffffffffffffffff81111561120757611206610c34565b5b60208301915083602082028301111561122357611222610c39565b5b9250929050565b6000806020838503121561124157611240610c25565b5b600083013567ffffffffffffffff81111561125f5761125e610c2a565b5b61126b858286016111d4565b92509250509250929050565b61128081611169565b82525050565b600060208201905061129b6000830184611277565b92915050565b6112aa81610bf1565b81146112b557600080fd5b50565b6000813590506112c7816112a1565b92915050565b6000602082840312156112e3576112e2610c25565b5b60006112f1848285016112b8565b91505092915050565b7f4e487b7100000000000000000000000000000000000000000000000000000000600052604160045260246000fd5b7f4e487b7100000000000000000000000000000000000000000000000000000000600052603260045260246000fd5b600080fd5b600080fd5b600080fd5b60008235600160800383360303811261138357611382611358565b5b80830191505092915050565b600080833560016020038436030381126113ac576113ab611358565b5b80840192508235915067ffffffffffffffff8211156113ce576113cd61135d565b5b6020830192506001820236038313156113ea576113e9611362565b5b509250929050565b600081905092915050565b82818337600083830152505050565b600061141883856113f2565b93506114258385846113fd565b82840190509392505050565b600061143e82848661140c565b91508190509392505050565b600082825260208201905092915050565b7f4d756c746963616c6c333a2076616c7565206d69736d61746368000000000000600082015250565b6000611491601a8361144a565b915061149c8261145b565b602082019050919050565b600060208201905081810360008301526114c081611484565b9050919050565b6000823560016040038336030381126114e3576114e2611358565b5b80830191505092915050565b7f4d756c746963616c6c333a2063616c6c206661696c6564000000000000000000600082015250565b600061152560178361144a565b9150611530826114ef565b602082019050919050565b6000602082019050818103600083015261155481611518565b9050919050565b60008235600160600383360303811261157757611576611358565b5b8083019150509291505056fea264697066735822122020c1bc9aacf8e4a6507193432a895a8e77094f45a1395583f07b24e860ef06cd64736f6c634300080c0033';
